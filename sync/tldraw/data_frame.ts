/**
 * Encodes the frames that carry documents. A patch usually goes to every session of a room: its JSON
 * is computed once and reused for each recipient's frame (the frames differ only in which events
 * they carry), which is where most of a busy room's CPU went. A connect reply puts every record of
 * the room: each record's JSON comes from its cache (record_json.ts), not a new serialization.
 *
 * @module
 */
import type { ConnectReply, DataEvent } from "./protocol.ts";
import { recordJson } from "./record_json.ts";

const encoded = new WeakMap<DataEvent, string>();

/** JSON of one event, computed once per event object (events are never mutated once sent). */
export function encodeDataEvent(event: DataEvent): string {
  let json = encoded.get(event);
  if (json === undefined) {
    json = JSON.stringify(event);
    encoded.set(event, json);
  }
  return json;
}

/** The frame `{"type":"data","data":[...events]}`, byte for byte what `JSON.stringify` gives. */
export function encodeDataFrame(events: readonly DataEvent[]): string {
  let body = "";
  for (let i = 0; i < events.length; i++) {
    body += i === 0 ? encodeDataEvent(events[i]!) : "," + encodeDataEvent(events[i]!);
  }
  return `{"type":"data","data":[${body}]}`;
}

/** The `connect` reply, equal to `JSON.stringify(reply)` as JSON (its `diff` comes last). */
export function encodeConnectReply(reply: ConnectReply): string {
  const { diff, ...rest } = reply;
  let body = "";
  for (const id in diff) {
    const op = diff[id]!;
    const value = op[0] === "put" ? `["put",${recordJson(op[1])}]` : JSON.stringify(op);
    body += `${body === "" ? "" : ","}${JSON.stringify(id)}:${value}`;
  }
  const head = JSON.stringify(rest);
  return `${head.slice(0, -1)},"diff":{${body}}}`;
}

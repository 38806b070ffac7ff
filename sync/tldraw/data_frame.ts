/**
 * Encodes the frames that carry documents. A patch usually goes to every session of a room: its JSON
 * is computed once and reused for each recipient's frame (the frames differ only in which events
 * they carry), which is where most of a busy room's CPU went. A connect reply puts every record of
 * the room: each record's JSON comes from its cache (record_json.ts), not a new serialization.
 *
 * @module
 */
import type { ConnectReply, DataEvent } from "./protocol.ts";
import { recordJson, storedRecordId, storedRecordJson } from "./record_json.ts";
import type { StoredRecord } from "./room_store.ts";
import { utf8Length } from "../utf8.ts";

const encoded = new WeakMap<DataEvent, { json: string; bytes: number }>();

/** JSON and UTF-8 size of one event, computed once per event object (never mutated once sent). */
function encoding(event: DataEvent): { json: string; bytes: number } {
  let entry = encoded.get(event);
  if (entry === undefined) {
    const json = JSON.stringify(event);
    entry = { json, bytes: utf8Length(json) };
    encoded.set(event, entry);
  }
  return entry;
}

const FRAME_HEAD = '{"type":"data","data":[';
const FRAME_TAIL = "]}";

/**
 * The frame `{"type":"data","data":[...events]}`, byte for byte what `JSON.stringify` gives, and its
 * UTF-8 size summed from the events' (each measured once, not once per recipient: the byte metrics
 * scanned every frame sent).
 */
export function encodeDataFrame(
  events: readonly DataEvent[],
): { text: string; bytes: number } {
  let body = "";
  let bytes = FRAME_HEAD.length + FRAME_TAIL.length + Math.max(0, events.length - 1);
  for (let i = 0; i < events.length; i++) {
    const entry = encoding(events[i]!);
    body += i === 0 ? entry.json : "," + entry.json;
    bytes += entry.bytes;
  }
  return { text: FRAME_HEAD + body + FRAME_TAIL, bytes };
}

/**
 * The `connect` reply, equal as JSON to `JSON.stringify(reply)` with a `["put", record]` op added to
 * its `diff` for each of `puts` (stored records go in as their stored JSON, unparsed). The `diff`
 * comes last.
 */
export function encodeConnectReply(
  reply: ConnectReply,
  puts: readonly StoredRecord[] = [],
): string {
  const { diff, ...rest } = reply;
  const ops: string[] = [];
  for (const id in diff) {
    const op = diff[id]!;
    const value = op[0] === "put" ? `["put",${recordJson(op[1])}]` : JSON.stringify(op);
    ops.push(`${JSON.stringify(id)}:${value}`);
  }
  for (const record of puts) {
    ops.push(`${JSON.stringify(storedRecordId(record))}:["put",${storedRecordJson(record)}]`);
  }
  const head = JSON.stringify(rest);
  return `${head.slice(0, -1)},"diff":{${ops.join(",")}}}`;
}

/**
 * A room's clock notice on the bus (`tldraw:<roomId>`): "room R is at clock N". When the commit was
 * small, the notice also carries what it wrote, so another isolate at clock N − k applies those k
 * steps without reading the change log from KV (in the spread benchmark each commit cost the other
 * isolate a meta read and a log read). A notice is still only a hint: steps that do not start
 * right after the receiver's clock are ignored and the log is read instead.
 *
 * @module
 */
import { isJsonObject, type Json } from "../bus/bus.ts";
import { utf8Length } from "../utf8.ts";
import type { WireRecord } from "./protocol.ts";
import { recordJson } from "./record_json.ts";
import type { LogStep } from "./room_store.ts";

/** Most UTF-8 bytes of records a notice carries (a bus message is at most 7,000 bytes). */
const MAX_NOTICE_RECORD_BYTES = 4_000;

/** A parsed clock notice. */
export interface ClockNotice {
  clock: number;
  /** The committing isolate (the room's writer). */
  writer?: string;
  /** The steps up to `clock`, when they were small. */
  steps?: LogStep[];
  /** Another isolate keeps losing commit races here and asks for a turn. */
  contended?: boolean;
  /** An isolate that joined the room says where it is (see room_presence.ts). */
  hello?: boolean;
}

type NoticeStep = { c: number; p: WireRecord[]; d: string[]; o?: string };

/** The notice of a commit that reached `clock`, with its `steps` if they are small enough. */
export function commitNotice(
  clock: number,
  writer: string | undefined,
  steps: readonly LogStep[] = [],
): Json {
  const body: { clock: number; w?: string; steps?: NoticeStep[] } = { clock };
  if (writer !== undefined) body.w = writer;
  let bytes = 0;
  const encoded: NoticeStep[] = [];
  for (const step of steps) {
    for (const { state } of step.puts) bytes += utf8Length(recordJson(state)) + 8;
    for (const id of step.deletes) bytes += utf8Length(id) + 4;
    if (bytes > MAX_NOTICE_RECORD_BYTES) return body as unknown as Json;
    encoded.push({
      c: step.clock,
      p: step.puts.map((put) => put.state),
      d: step.deletes,
      ...(step.origin === undefined ? {} : { o: step.origin }),
    });
  }
  if (encoded.length > 0 && encoded.at(-1)!.c === clock) body.steps = encoded;
  return body as unknown as Json;
}

/** `body` as a {@link ClockNotice}, or `null` when it is not one. */
export function parseClockNotice(body: Json): ClockNotice | null {
  if (!isJsonObject(body)) return null;
  const { clock, w, steps, contended, hello } = body;
  if (typeof clock !== "number") return null;
  const notice: ClockNotice = { clock };
  if (typeof w === "string") notice.writer = w;
  if (contended === true) notice.contended = true;
  if (hello === true) notice.hello = true;
  if (Array.isArray(steps)) {
    const parsed: LogStep[] = [];
    for (const step of steps) {
      if (!isJsonObject(step)) return notice;
      const { c, p, d, o } = step;
      if (typeof c !== "number" || !Array.isArray(p) || !Array.isArray(d)) return notice;
      if (!p.every(isRecord) || !d.every((id) => typeof id === "string")) return notice;
      parsed.push({
        clock: c,
        puts: (p as unknown as WireRecord[]).map((state) => ({ state, lastChangedClock: c })),
        deletes: d as string[],
        ...(typeof o === "string" ? { origin: o } : {}),
      });
    }
    notice.steps = parsed;
  }
  return notice;
}

function isRecord(value: Json): boolean {
  return isJsonObject(value) && typeof value.id === "string" && typeof value.typeName === "string";
}

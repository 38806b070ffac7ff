/**
 * A room's clock notice on the bus (`tldraw:<roomId>`): "room R is at clock N". A notice also
 * carries what the commit wrote (a bigger commit is announced as a few notices in a row), so
 * another isolate at clock N − k applies those k steps without reading the change log from KV (in
 * the spread benchmark each commit cost the other isolate a meta read and a log read). A record that
 * existed before goes as the patch the committing isolate's sessions got (a moved shape: ~40 bytes
 * instead of ~500; the receiver applies it to its copy at the clock before, which is the same). A
 * notice is still only a hint: steps that do not start right after the receiver's clock, or patch a
 * record the receiver does not have, are not applied and the log is read instead.
 *
 * @module
 */
import { isJsonObject, type Json } from "../bus/bus.ts";
import { utf8Length } from "../utf8.ts";
import type { ObjectDiff } from "./diff.ts";
import { isObjectDiff, type WireRecord } from "./protocol.ts";
import { recordJson } from "./record_json.ts";
import type { LogStep, RecordPatch } from "./room_store.ts";

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

/** A step in a notice: whole records `p`, patches `u` (`[id, diff, JSON length]`), deletes `d`. */
type NoticeStep = {
  c: number;
  p: WireRecord[];
  u?: [string, ObjectDiff, number][];
  d: string[];
  o?: string;
};

/** Notices one commit is announced with at most (past that the last one carries no steps). */
export const MAX_COMMIT_NOTICES = 4;

/**
 * The notices of a commit that reached `clock`, in order: its `steps` split into runs that each fit
 * one notice (each notice at the clock of its last step), so that a commit of many small pushes
 * reaches the other isolates without a log read (measured: one room × 50 clients over two
 * isolates, 15 % of commits were too big for one notice, and each cost the other isolate a meta
 * and a log read). A step too big for a notice, or steps beyond {@link MAX_COMMIT_NOTICES}, end
 * the list with a notice of the clock alone: receivers read the log from there.
 */
export function commitNotices(
  clock: number,
  writer: string | undefined,
  steps: readonly LogStep[] = [],
): Json[] {
  const notice = (at: number, run?: NoticeStep[]): Json => {
    const body: { clock: number; w?: string; steps?: NoticeStep[] } = { clock: at };
    if (writer !== undefined) body.w = writer;
    if (run) body.steps = run;
    return body as unknown as Json;
  };
  const notices: Json[] = [];
  let run: NoticeStep[] = [];
  let bytes = 0;
  for (const step of steps) {
    const patched = new Map(step.patches?.map((patch) => [patch.id, patch]));
    const whole: WireRecord[] = [];
    const patches: [string, ObjectDiff, number][] = [];
    let size = 0;
    for (const { state } of step.puts) {
      const patch = patched.get(state.id);
      if (patch) {
        patches.push([patch.id, patch.diff, patch.chars]);
        size += utf8Length(JSON.stringify(patch.diff)) + utf8Length(patch.id) + 16;
      } else {
        whole.push(state);
        size += utf8Length(recordJson(state)) + 8;
      }
    }
    for (const id of step.deletes) size += utf8Length(id) + 4;
    if (run.length > 0 && bytes + size > MAX_NOTICE_RECORD_BYTES) {
      notices.push(notice(run.at(-1)!.c, run));
      run = [];
      bytes = 0;
      if (notices.length === MAX_COMMIT_NOTICES - 1) break;
    }
    if (size > MAX_NOTICE_RECORD_BYTES) break;
    run.push({
      c: step.clock,
      p: whole,
      ...(patches.length > 0 ? { u: patches } : {}),
      d: step.deletes,
      ...(step.origin === undefined ? {} : { o: step.origin }),
    });
    bytes += size;
  }
  // Whatever is not in `run` now (a step too big, or too many notices) is read from the log.
  notices.push(run.length > 0 && run.at(-1)!.c === clock ? notice(clock, run) : notice(clock));
  return notices;
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
      const { c, p, u, d, o } = step;
      if (typeof c !== "number" || !Array.isArray(p) || !Array.isArray(d)) return notice;
      if (!p.every(isRecord) || !d.every((id) => typeof id === "string")) return notice;
      const patches = u === undefined ? [] : Array.isArray(u) ? u.map(parsePatch) : [null];
      if (patches.some((patch) => patch === null)) return notice;
      parsed.push({
        clock: c,
        puts: (p as unknown as WireRecord[]).map((state) => ({ state, lastChangedClock: c })),
        deletes: d as string[],
        ...(typeof o === "string" ? { origin: o } : {}),
        ...(patches.length > 0 ? { patches: patches as RecordPatch[] } : {}),
      });
    }
    notice.steps = parsed;
  }
  return notice;
}

/** `[id, diff, chars]` as a {@link RecordPatch}, or `null`. */
function parsePatch(value: Json): RecordPatch | null {
  if (!Array.isArray(value) || value.length !== 3) return null;
  const [id, diff, chars] = value;
  if (typeof id !== "string" || typeof chars !== "number" || !isObjectDiff(diff)) return null;
  return { id, diff: diff as unknown as ObjectDiff, chars };
}

function isRecord(value: Json): boolean {
  return isJsonObject(value) && typeof value.id === "string" && typeof value.typeName === "string";
}

/**
 * Cross-isolate catch-up helpers: turning a reloaded room into per-clock steps when the change log
 * no longer reaches back (compacted, or a bulk commit logged without ids).
 *
 * Rule (the protocol's tombstone cutoff, spec 7.2): a cache at clock `from` with
 * `from >= tombstoneHistoryStartsAtClock` is brought to clock `to` exactly by putting every record
 * whose `lastChangedClock` lies in `(from, to]` and deleting every id whose tombstone does. Split
 * by that clock, the same data gives one step per clock, so sessions still see every clock once, in
 * order. Records and tombstones above `to` belong to commits that were landing while the room was
 * listed (a listing is not a snapshot); they are left to the next read of the log.
 *
 * @module
 */
import type { LogStep, RoomData } from "./room_store.ts";

/** Most steps rebuilt from a reload; further behind, sessions re-hydrate by reconnecting instead. */
export const MAX_REBUILT_STEPS = 2_000;

/** Why {@link stepsFromReload} could not build steps. */
export const RebuildError = {
  /** Tombstones older than the cutoff are gone: deletions since `from` are unknown. */
  history_pruned: "history_pruned",
  /** Too many clocks to forward one by one. */
  too_far_behind: "too_far_behind",
} as const;
/** One of the {@link RebuildError} values. */
export type RebuildError = (typeof RebuildError)[keyof typeof RebuildError];

/** Steps `(from, data.meta.documentClock]` from a reloaded room, or why that is not possible. */
export function stepsFromReload(
  data: RoomData,
  from: number,
  maxSteps = MAX_REBUILT_STEPS,
): { ok: true; steps: LogStep[] } | { ok: false; error: RebuildError } {
  const to = data.meta.documentClock;
  if (from < data.meta.tombstoneHistoryStartsAtClock) {
    return { ok: false, error: RebuildError.history_pruned };
  }
  if (to - from > maxSteps) return { ok: false, error: RebuildError.too_far_behind };
  const steps: LogStep[] = [];
  for (let clock = from + 1; clock <= to; clock++) steps.push({ clock, puts: [], deletes: [] });
  for (const record of data.records) {
    const c = record.lastChangedClock;
    if (c > from && c <= to) steps[c - from - 1]!.puts.push(record);
  }
  for (const [id, c] of data.tombstones) {
    if (c > from && c <= to) steps[c - from - 1]!.deletes.push(id);
  }
  return { ok: true, steps };
}

/** `data` without what commits after its meta clock already wrote (see the module doc). */
export function settledView(data: RoomData): RoomData {
  const to = data.meta.documentClock;
  return {
    meta: data.meta,
    records: data.records.filter((r) => r.lastChangedClock <= to),
    tombstones: new Map([...data.tombstones].filter(([, c]) => c <= to)),
  };
}

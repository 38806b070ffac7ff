/**
 * A room's document as one isolate caches it: records with their last-changed clocks, tombstones,
 * the clock and the tombstone-history cutoff (spec 7.1), and the document's JSON size (for the room
 * size limit). Only the engine changes it, and only with what the store committed.
 *
 * @module
 */
import { applyObjectDiff } from "./diff.ts";
import type { CachedRecord, ForwardDiff } from "./push_plan.ts";
import type { WireRecord } from "./protocol.ts";
import { recordJson, storedRecordId } from "./record_json.ts";
import type { ChangeSet, LogStep, RoomData } from "./room_store.ts";

/** One room's cached document. */
export class RoomCache {
  records = new Map<string, CachedRecord>();
  /** Deleted record id → clock of the deletion. */
  tombstones = new Map<string, number>();
  clock = 0;
  /** Clients behind this clock need `wipe_all` (older tombstones are gone). */
  historyStart = 0;
  /** Total JSON length of the records. */
  roomChars = 0;

  /** Replaces everything with `data` as loaded from the store; returns the clock it is at. */
  replace(data: RoomData): number {
    this.records = new Map();
    this.roomChars = 0;
    // Spec 7.1: the clock is at least every stored record's and tombstone's clock.
    let clock = data.meta.documentClock;
    for (const record of data.records) {
      // Loaded records stay as the store made them (a LazyRecord is parsed when first used).
      const cached: CachedRecord = record.chars !== undefined
        ? record as CachedRecord
        : { ...record, chars: recordJson(record.state).length };
      this.records.set(storedRecordId(record), cached);
      this.roomChars += cached.chars;
      clock = Math.max(clock, record.lastChangedClock);
    }
    for (const tombstoneClock of data.tombstones.values()) clock = Math.max(clock, tombstoneClock);
    this.tombstones = new Map(data.tombstones);
    this.historyStart = Math.min(data.meta.tombstoneHistoryStartsAtClock, clock);
    this.clock = clock;
    return clock;
  }

  /** Puts a record as changed at `clock` (`chars`: its JSON length, when known). */
  set(state: WireRecord, clock: number, chars = recordJson(state).length): void {
    const old = this.records.get(state.id);
    this.roomChars += chars - (old?.chars ?? 0);
    this.records.set(state.id, { state, lastChangedClock: clock, chars });
  }

  delete(id: string): void {
    const old = this.records.get(id);
    if (!old) return;
    this.roomChars -= old.chars;
    this.records.delete(id);
  }

  /** A change set this isolate committed as `clock` (`sizes`: its records' JSON lengths). */
  applyCommitted(changeSet: ChangeSet, clock: number, sizes?: number[]): void {
    this.clock = clock;
    for (const [i, { record }] of changeSet.puts.entries()) {
      this.set(record, clock, sizes?.[i]);
      this.tombstones.delete(record.id);
    }
    for (const { id } of changeSet.deletes) {
      this.delete(id);
      this.tombstones.set(id, clock);
    }
  }

  /**
   * A step another isolate committed; returns the change it makes here, for the sessions, or
   * `undefined` (and changes nothing) when it patches a record this cache does not have.
   */
  applyStep(step: LogStep): ForwardDiff | undefined {
    const whole = new Set(step.puts.map((record) => record.state.id));
    const patches = step.patches?.filter((patch) => !whole.has(patch.id)) ?? [];
    if (patches.some((patch) => !this.records.has(patch.id))) return undefined;
    const forward: ForwardDiff = { puts: {}, deletes: [] };
    for (const record of step.puts) {
      const id = record.state.id;
      const prev = this.records.get(id)?.state;
      forward.puts[id] = prev ? [prev, record.state] : record.state;
      this.set(record.state, record.lastChangedClock);
      this.tombstones.delete(id);
    }
    for (const { id, diff, chars } of patches) {
      const prev = this.records.get(id)!.state;
      const next = applyObjectDiff(prev, diff);
      forward.puts[id] = [prev, next, diff];
      this.set(next, step.clock, chars);
    }
    for (const id of step.deletes) {
      if (this.records.has(id)) forward.deletes.push(id);
      this.delete(id);
      this.tombstones.set(id, step.clock);
    }
    this.clock = step.clock;
    return forward;
  }

  /** Spec 7.3: tombstones before `startsAt` are forgotten. */
  applyHistoryStart(startsAt: number): void {
    this.historyStart = startsAt;
    for (const [id, clock] of this.tombstones) {
      if (clock < startsAt) this.tombstones.delete(id);
    }
  }

  /** Spec 7.2: what changed after `since`; `undefined` when nothing did. */
  changesSince(
    since: number,
  ): { wipeAll: boolean; puts: CachedRecord[]; deletes: string[] } | undefined {
    if (since === this.clock) return undefined;
    if (since > this.clock) since = -1;
    const wipeAll = since < this.historyStart;
    const puts: CachedRecord[] = [];
    const deletes: string[] = [];
    for (const record of this.records.values()) {
      if (wipeAll || record.lastChangedClock > since) puts.push(record);
    }
    if (!wipeAll) {
      for (const [id, clock] of this.tombstones) if (clock > since) deletes.push(id);
    }
    return { wipeAll, puts, deletes };
  }
}

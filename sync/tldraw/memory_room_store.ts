/**
 * An in-process {@link RoomStore}: the reference behaviour for the contract tests and a store for
 * engine unit tests. Everything is deep-copied at the boundary so callers cannot alias stored state.
 *
 * @module
 */
import {
  type ChangeSet,
  CommitError,
  type CommitResult,
  type RoomData,
  type RoomStore,
  type SessionEntry,
  type StepsSince,
  type StoredRecord,
} from "./room_store.ts";

interface MemoryRoom {
  data: RoomData;
  /** clock → what was written at that clock (the change log, with the values). */
  log: Map<number, { puts: StoredRecord[]; deletes: string[]; origin?: string }>;
}

/** Options for {@link MemoryRoomStore}. */
export interface MemoryRoomStoreOptions {
  /** How many change-log entries to keep per room (older clocks need a full reload). */
  logSize?: number;
  /**
   * Most steps one {@link MemoryRoomStore.commitSteps} commits (the rest are left to the caller,
   * as a KV store does with what does not fit one atomic operation). Default: all.
   */
  maxStepsPerCommit?: number;
}

/** A {@link RoomStore} in memory. */
export class MemoryRoomStore implements RoomStore {
  readonly #rooms = new Map<string, MemoryRoom>();
  // Sessions may be registered before a room's first write, so they live apart from the rooms.
  readonly #sessions = new Map<string, Map<string, SessionEntry>>();
  readonly #logSize: number;
  readonly #maxStepsPerCommit: number;

  constructor(options: MemoryRoomStoreOptions = {}) {
    this.#logSize = options.logSize ?? 1000;
    this.#maxStepsPerCommit = Math.max(1, options.maxStepsPerCommit ?? Infinity);
  }

  load(roomId: string): Promise<RoomData | null> {
    const room = this.#rooms.get(roomId);
    return Promise.resolve(room ? structuredClone(room.data) : null);
  }

  create(roomId: string, data: RoomData): Promise<boolean> {
    if (this.#rooms.has(roomId)) return Promise.resolve(false);
    this.#rooms.set(roomId, { data: structuredClone(data), log: new Map() });
    return Promise.resolve(true);
  }

  commitSteps(roomId: string, expectedClock: number, steps: ChangeSet[]): Promise<CommitResult> {
    const room = this.#rooms.get(roomId);
    if (!room || room.data.meta.documentClock !== expectedClock) {
      return Promise.resolve({ ok: false, error: CommitError.conflict });
    }
    let clock = expectedClock;
    for (const changes of steps.slice(0, this.#maxStepsPerCommit)) {
      clock = this.#apply(room, clock + 1, changes);
    }
    return Promise.resolve({ ok: true, clock });
  }

  #apply(room: MemoryRoom, clock: number, changes: ChangeSet): number {
    const { data } = room;
    const byId = new Map(data.records.map((r) => [r.state.id, r]));
    for (const { record } of changes.puts) {
      byId.set(record.id, { state: structuredClone(record), lastChangedClock: clock });
      data.tombstones.delete(record.id);
    }
    for (const { id } of changes.deletes) {
      byId.delete(id);
      data.tombstones.set(id, clock);
    }
    data.records = [...byId.values()];
    data.meta.documentClock = clock;
    if (changes.schema) data.meta.schema = structuredClone(changes.schema);
    if (changes.writer) data.meta.writer = { isolateId: changes.writer, at: Date.now() };
    room.log.set(clock, {
      puts: changes.puts.map((p) => ({
        state: structuredClone(p.record),
        lastChangedClock: clock,
      })),
      deletes: changes.deletes.map((d) => d.id),
      ...(changes.origin ? { origin: changes.origin } : {}),
    });
    room.log.delete(clock - this.#logSize);
    return clock;
  }

  readClock(roomId: string): Promise<number> {
    return Promise.resolve(this.#rooms.get(roomId)?.data.meta.documentClock ?? -1);
  }

  stepsSince(roomId: string, since: number): Promise<StepsSince> {
    const room = this.#rooms.get(roomId);
    if (!room) return Promise.resolve({ kind: "gap", clock: -1 });
    const { meta } = room.data;
    const clock = meta.documentClock;
    if (since === clock) return Promise.resolve({ kind: "none", clock });
    if (since > clock || since < meta.tombstoneHistoryStartsAtClock) {
      return Promise.resolve({ kind: "gap", clock });
    }
    const steps = [];
    for (let c = since + 1; c <= clock; c++) {
      const entry = room.log.get(c);
      if (!entry) return Promise.resolve({ kind: "gap", clock });
      steps.push({
        clock: c,
        puts: structuredClone(entry.puts),
        deletes: [...entry.deletes],
        ...(entry.origin ? { origin: entry.origin } : {}),
      });
    }
    return Promise.resolve({
      kind: "steps",
      clock,
      tombstoneHistoryStartsAtClock: meta.tombstoneHistoryStartsAtClock,
      steps,
      ...(meta.writer ? { writer: { ...meta.writer } } : {}),
    });
  }

  pruneTombstones(roomId: string, expectedClock: number, startsAt: number): Promise<boolean> {
    const room = this.#rooms.get(roomId);
    if (!room || room.data.meta.documentClock !== expectedClock) return Promise.resolve(false);
    for (const [id, clock] of room.data.tombstones) {
      if (clock < startsAt) room.data.tombstones.delete(id);
    }
    room.data.meta.tombstoneHistoryStartsAtClock = startsAt;
    return Promise.resolve(true);
  }

  putSession(roomId: string, entry: SessionEntry, _ttlMs: number): Promise<void> {
    let sessions = this.#sessions.get(roomId);
    if (!sessions) this.#sessions.set(roomId, sessions = new Map());
    sessions.set(entry.sessionId, { ...entry });
    return Promise.resolve();
  }

  deleteSession(roomId: string, sessionId: string): Promise<void> {
    this.#sessions.get(roomId)?.delete(sessionId);
    return Promise.resolve();
  }

  listSessions(roomId: string): Promise<SessionEntry[]> {
    const now = Date.now();
    const sessions = [...(this.#sessions.get(roomId)?.values() ?? [])];
    return Promise.resolve(sessions.filter((s) => s.expiresAt > now).map((s) => ({ ...s })));
  }

  deleteRoom(roomId: string): Promise<void> {
    this.#rooms.delete(roomId);
    this.#sessions.delete(roomId);
    return Promise.resolve();
  }
}

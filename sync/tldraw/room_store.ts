/**
 * The narrow storage interface of a tldraw room. The store is the sequencer and the source of truth:
 * every change is committed against the clock the caller last saw, so two isolates serving one room
 * can never both advance it from the same value. Implementations: {@link MemoryRoomStore} (tests,
 * single process) and {@link KvRoomStore} (Deno KV).
 *
 * @module
 */
import type { ObjectDiff } from "./diff.ts";
import type { WireRecord, WireSchema } from "./protocol.ts";

/** Per-room metadata. */
export interface RoomMeta {
  /** Current document clock; goes up by exactly one per commit. */
  documentClock: number;
  /** Clients whose `lastServerClock` is below this need `wipe_all` (tombstones before it are gone). */
  tombstoneHistoryStartsAtClock: number;
  /** Serialized schema the stored records conform to. */
  schema: WireSchema | null;
  /** Who made the latest commit that named a writer (see {@link ChangeSet.writer}). */
  writer?: RoomWriter | undefined;
}

/**
 * The isolate that committed to a room last, and when (epoch ms, its own clock). While that is
 * recent, other isolates forward their pushes to it instead of racing it for the room's clock
 * (forwarding.ts). Only a hint: every commit is still checked against the clock.
 */
export interface RoomWriter {
  isolateId: string;
  at: number;
}

/** A document record with the clock of its last change. */
export interface StoredRecord {
  state: WireRecord;
  lastChangedClock: number;
  /** Length of the record's JSON, when the store read it as JSON (saves serializing it again). */
  chars?: number;
}

/** Everything stored for a room. */
export interface RoomData {
  meta: RoomMeta;
  records: StoredRecord[];
  /** Deleted record id → clock of the deletion. */
  tombstones: Map<string, number>;
}

/**
 * One atomic change. `prev` is the record as the caller saw it (its cached state): stores may use it
 * to clean up (e.g. the KV store deletes the chunks of the replaced value) without reading first.
 */
export interface ChangeSet {
  /**
   * `noTombstone`: the record is new and no tombstone of its id can be stored (the planner knows
   * the room has none), so a store need not delete one.
   */
  puts: { record: WireRecord; prev?: StoredRecord | undefined; noTombstone?: boolean }[];
  deletes: { id: string; prev: StoredRecord }[];
  /** Replaces the stored schema (after a migration of the stored records). */
  schema?: WireSchema;
  /** The committing isolate: recorded in the meta as the room's {@link RoomWriter}. */
  writer?: string;
  /**
   * Identifies the push this step comes from when it was forwarded from another isolate (or may
   * have been): kept in the change log, so that every isolate can tell it was committed and none
   * commits it twice (forwarding.ts).
   */
  origin?: string;
}

/** Why a commit was refused. */
export const CommitError = {
  /** The room's clock is not the expected one: someone else committed first. Catch up and retry. */
  conflict: "conflict",
} as const;
/** One of the {@link CommitError} values. */
export type CommitError = (typeof CommitError)[keyof typeof CommitError];

/**
 * The outcome of {@link DocumentStore.commitSteps}. `clock` is the clock of the last step committed:
 * the steps up to `clock - expectedClock` were committed, the others were not (write them again).
 */
export type CommitResult = { ok: true; clock: number } | { ok: false; error: CommitError };

/** Why a store operation failed (other than a lost race, which is a {@link CommitResult}). */
export const StoreFailure = {
  /** A write the store needed was refused or lost (e.g. a KV atomic operation that failed). */
  write_failed: "write_failed",
  /** What was asked cannot be stored at all (e.g. a room's initial document too big to create). */
  too_large: "too_large",
  /** The room disappeared while it was being read or created. */
  missing: "missing",
  /** The storage did not answer (network, file): the operation may be retried later. */
  unavailable: "unavailable",
} as const;
/** One of the {@link StoreFailure} values. */
export type StoreFailure = (typeof StoreFailure)[keyof typeof StoreFailure];

/** A store operation failed; `failure` says how (the room engine logs it and closes sessions). */
export class RoomStoreError extends Error {
  constructor(readonly failure: StoreFailure, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "RoomStoreError";
  }

  /** `error` as a {@link RoomStoreError}: anything a store threw that is not one is `unavailable`. */
  static from(error: unknown): RoomStoreError {
    if (error instanceof RoomStoreError) return error;
    const message = error instanceof Error ? error.message : String(error);
    return new RoomStoreError(StoreFailure.unavailable, message, { cause: error });
  }
}

/**
 * One committed clock as read back from the change log: the records it wrote and the ids it
 * deleted. Records are those of exactly that clock; a record changed again at a later clock (before
 * it could be read) appears only in that later step, which keeps applying the steps in order
 * correct (the same rule as the protocol's tombstone cutoff, spec 7.2).
 */
export interface LogStep {
  clock: number;
  puts: StoredRecord[];
  deletes: string[];
  /** The {@link ChangeSet.origin} it was committed with. */
  origin?: string;
  /**
   * Records this step changed, as patches to their state at the clock before (only in steps
   * announced on the bus: the store's log keeps whole records). The committing isolate lists them
   * alongside the whole records in `puts`; a notice carries the patch alone, and a receiver finds
   * those records in `patches` only.
   */
  patches?: RecordPatch[];
}

/** A record changed by `diff` from its state at the step's previous clock; its JSON is `chars` long. */
export interface RecordPatch {
  id: string;
  diff: ObjectDiff;
  chars: number;
}

/** The outcome of {@link RoomStore.stepsSince}. */
export type StepsSince =
  /** Nothing newer than the given clock. */
  | { kind: "none"; clock: number }
  /** One step per clock after the given one, in order, with no gap, up to `clock`. */
  | {
    kind: "steps";
    clock: number;
    tombstoneHistoryStartsAtClock: number;
    steps: LogStep[];
    writer?: RoomWriter | undefined;
  }
  /** The log does not reach back that far (compacted, or a bulk change): reload the room. */
  | { kind: "gap"; clock: number };

/** A session's entry, shared by every isolate serving the room (room-wide limits, presence). */
export interface SessionEntry {
  sessionId: string;
  /** Which isolate serves it. */
  isolateId: string;
  userId?: string | undefined;
  /** When the entry was last refreshed (epoch ms). */
  lastSeen: number;
  /** After this (epoch ms) the entry counts as gone even if the store has not deleted it yet. */
  expiresAt: number;
  /**
   * The session's presence record (mirrored from the bus), so that a session joining on another
   * isolate sees it, and so that it vanishes with the entry when its isolate dies.
   */
  presence?: { presenceId: string; record: WireRecord } | undefined;
}

/**
 * A room's document in storage: the sequencer (its clock) and the source of truth. Every method may
 * be called by several isolates concurrently.
 */
export interface DocumentStore {
  /**
   * Commits cross a network (Deno Deploy's KV): a committed group's patches then go out at once
   * instead of waiting, under load, for the group behind it (which is a round trip away).
   */
  readonly remote?: boolean;
  /** Loads a room, or `null` when it was never created. */
  load(roomId: string): Promise<RoomData | null>;
  /**
   * Creates a room with `data` unless it already exists. Returns `false` when it existed (load it).
   */
  create(roomId: string, data: RoomData): Promise<boolean>;
  /**
   * Commits `steps` as the clocks `expectedClock + 1`, `expectedClock + 2`, …, iff the room is at
   * `expectedClock`: one check, atomically. Each step keeps its own clock and its own change-log
   * entry, so {@link stepsSince} still yields one step per clock. A `prev` of a later step may be
   * the record as written by an earlier step.
   *
   * The store decides how much fits one write: it commits the longest prefix of `steps` that does
   * (at least the first step, however big) and returns its last clock; the caller commits the rest
   * again. Nothing is ever half-committed: a lost race writes nothing.
   */
  commitSteps(roomId: string, expectedClock: number, steps: ChangeSet[]): Promise<CommitResult>;
  /**
   * Optional, used when {@link remote} (kv_pipeline.ts): commits `steps` as the clocks after `expectedClock`
   * while earlier commits of the room are still in flight, all of them or none. `undefined` when it
   * cannot now (no pipeline yet, it ended, or the steps do not fit one write): the caller then
   * waits for what is in flight and uses {@link commitSteps}. A room's results settle in call
   * order, and after a conflict every later one fails too.
   */
  pipelineSteps?(
    roomId: string,
    expectedClock: number,
    steps: ChangeSet[],
  ): Promise<CommitResult> | undefined;
  /** Current clock (cheap: one read). `-1` when the room does not exist. */
  readClock(roomId: string): Promise<number>;
  /**
   * Changes committed after `clock`, one {@link LogStep} per clock (cross-isolate catch-up). A step
   * lists what its clock wrote, except that a record changed again by a later step may be left to
   * that step (a store may keep only records' latest values): applied in order, the steps still
   * end at the room's state.
   */
  stepsSince(roomId: string, clock: number): Promise<StepsSince>;
  /**
   * Forgets tombstones older than `startsAt` and moves the history cutoff there, iff the room is at
   * `expectedClock` (the clock does not move). Returns `false` on a lost race.
   */
  pruneTombstones(roomId: string, expectedClock: number, startsAt: number): Promise<boolean>;
  /**
   * Removes everything stored for a room (document, log, tombstones, sessions): a hard-deleted file.
   * Afterwards `load` returns `null` and `readClock` `-1`. Idempotent.
   */
  deleteRoom(roomId: string): Promise<void>;
  /**
   * Optional: keeps `records`, the whole document at `clock`, as a compacted copy that later loads
   * read instead of every record (with the change log after it). Never needed for correctness.
   * Returns whether it was stored (not when a copy at `clock` or later exists).
   */
  saveSnapshot?(roomId: string, clock: number, records: readonly StoredRecord[]): Promise<boolean>;
  /**
   * Optional: `undefined` when a commit made now would be written at once; otherwise resolves when
   * a write in flight (of any room on this handle) has ended. A room waits for it before planning
   * its next group, so that the pushes arriving meanwhile join that group rather than the next.
   */
  writeSlot?(): Promise<void> | undefined;
}

/**
 * Who is in a room, across isolates: one expiring entry per session (room-wide session limits, the
 * presence of sessions whose isolate died).
 */
export interface SessionDirectory {
  /** Writes (or refreshes) a session entry that disappears after `ttlMs` unless refreshed. */
  putSession(roomId: string, entry: SessionEntry, ttlMs: number): Promise<void>;
  /** Removes a session entry. */
  deleteSession(roomId: string, sessionId: string): Promise<void>;
  /** Live (not expired) session entries of a room. */
  listSessions(roomId: string): Promise<SessionEntry[]>;
}

/** Storage for tldraw rooms: the document and the session directory, on one backend. */
export interface RoomStore extends DocumentStore, SessionDirectory {}

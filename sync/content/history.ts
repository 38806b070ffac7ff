/**
 * Version history of rooms in Postgres: compressed copies of the document, a throttled recorder fed by
 * the room hooks, and retention.
 *
 * Recording rules: while a room changes, at most one version per `intervalMs` (8 s by default; one
 * more interval per {@link LARGE_VERSION_BYTES} of document, so a 25 MB room writes one a minute), and only
 * when the clock moved since the last one; when the last session leaves, right away (again only if the
 * clock moved); after a restore, always. Each isolate throttles the commits it makes itself; a version
 * with the same clock as an existing one is not written twice (several isolates, a leave right after
 * the timer). Interval versions fall due on whole seconds, and the versions waiting for the isolate's
 * write turn are stored with one statement: a hundred small rooms cost a statement a second, not
 * twelve.
 *
 * @module
 */
import { sql } from "kysely";
import type { Database } from "../../db/database.ts";
import type { Logger } from "../../log.ts";
import type { RoomStore } from "../tldraw/room_store.ts";
import {
  decodeSnapshot,
  type DocumentCopy,
  type DocumentSnapshot,
  encodeSnapshot,
  readRoomText,
} from "./document.ts";
import type { TextCompressor } from "./gzip.ts";
import { macrotask } from "../next_turn.ts";

/** Why a version was written. */
export const VersionReason = {
  interval: "interval",
  last_leave: "last_leave",
  restore: "restore",
  manual: "manual",
} as const;
/** One of {@link VersionReason}. */
export type VersionReason = (typeof VersionReason)[keyof typeof VersionReason];

/** A version as listed (without its data). */
export interface VersionInfo {
  id: string;
  roomId: string;
  clock: number;
  createdAt: number;
  reason: VersionReason;
  /** Uncompressed size in bytes. */
  size: number;
}

/**
 * Retention: every version younger than `denseMs`; older ones thinned to one per `bucketMs` (the
 * newest of each bucket) up to `maxAgeMs`, nothing older. The newest version is always kept.
 */
export interface RetentionPolicy {
  denseMs: number;
  bucketMs: number;
  maxAgeMs: number;
}

/** Dense for a day, hourly for 30 days, daily up to a year (what users scroll back through). */
export const DEFAULT_RETENTION: RetentionPolicy = {
  denseMs: 24 * 3_600_000,
  bucketMs: 3_600_000,
  maxAgeMs: 365 * 24 * 3_600_000,
};

/** A version {@link HistoryStore.addBatch} stores unless its room has one at its clock. */
export interface PendingVersion {
  roomId: string;
  snapshot: DocumentCopy;
  reason: Exclude<VersionReason, "restore">;
  createdAt: number;
}

/** Postgres access to `room_history`. */
export class HistoryStore {
  readonly #database: Database;
  readonly #compress: TextCompressor | undefined;
  /** `compress` compresses the versions (default: on this thread, see gzip.ts). */
  constructor(database: Database, compress?: TextCompressor) {
    this.#database = database;
    this.#compress = compress;
  }

  /**
   * Stores `snapshot` as a version of `roomId` unless a version with its clock exists (restores are
   * always stored: they are a user action worth a row). Returns the new version, or `null`.
   */
  async add(
    roomId: string,
    snapshot: DocumentCopy,
    reason: VersionReason,
    now = Date.now(),
  ): Promise<VersionInfo | null> {
    const { data, size } = await encodeSnapshot(snapshot, this.#compress);
    const values = { roomId, clock: snapshot.clock, createdAt: now, reason, size, data };
    const db = this.#database.db;
    const row = reason === "restore"
      ? await db.insertInto("room_history").values(values).returning("id").executeTakeFirst()
      : (await sql<{ id: number }>`
        INSERT INTO "room_history" ("roomId", "clock", "createdAt", "reason", "size", "data")
        SELECT ${roomId}, ${snapshot.clock}, ${now}, ${reason}, ${size}, ${data}
        WHERE NOT EXISTS (
          SELECT 1 FROM "room_history" WHERE "roomId" = ${roomId} AND "clock" = ${snapshot.clock}
        )
        RETURNING "id"`.execute(db)).rows[0];
    if (!row) return null;
    return { id: String(row.id), roomId, clock: snapshot.clock, createdAt: now, reason, size };
  }

  /**
   * Stores several versions (of different rooms) with one statement, each unless a version of its
   * room at its clock exists; returns each one's new version, or `null`, in order. The documents are
   * compressed first, one per macrotask turn. Per small room a version costs the serving thread
   * mostly the statement (building it, the round trip, the answer), so many rooms' versions written
   * together cost little more than one.
   */
  async addBatch(versions: readonly PendingVersion[]): Promise<(VersionInfo | null)[]> {
    const rows = [];
    for (const [index, version] of versions.entries()) {
      if (index > 0) await macrotask();
      const { data, size } = await encodeSnapshot(version.snapshot, this.#compress);
      rows.push({ ...version, clock: version.snapshot.clock, size, data });
    }
    if (rows.length === 0) return [];
    const values = sql.join(
      rows.map((row) =>
        sql`(${row.roomId}, ${row.clock}::bigint, ${row.createdAt}::bigint, ${row.reason}, ${row.size}::integer, ${row.data}::bytea)`
      ),
    );
    const { rows: inserted } = await sql<{ id: number; roomId: string; clock: number | string }>`
      INSERT INTO "room_history" ("roomId", "clock", "createdAt", "reason", "size", "data")
      SELECT v."roomId", v."clock", v."createdAt", v."reason", v."size", v."data"
      FROM (VALUES ${values}) AS v("roomId", "clock", "createdAt", "reason", "size", "data")
      WHERE NOT EXISTS (
        SELECT 1 FROM "room_history" h WHERE h."roomId" = v."roomId" AND h."clock" = v."clock"
      )
      RETURNING "id", "roomId", "clock"`.execute(this.#database.db);
    const ids = new Map(inserted.map((row) => [`${row.roomId} ${Number(row.clock)}`, row.id]));
    return rows.map((row) => {
      const id = ids.get(`${row.roomId} ${row.clock}`);
      if (id === undefined) return null;
      ids.delete(`${row.roomId} ${row.clock}`); // the same room and clock twice: stored once
      const { roomId, clock, createdAt, reason, size } = row;
      return { id: String(id), roomId, clock, createdAt, reason, size };
    });
  }

  /** Versions of a room, newest first. */
  async list(roomId: string, limit = 200): Promise<VersionInfo[]> {
    const rows = await this.#database.db.selectFrom("room_history")
      .select(["id", "roomId", "clock", "createdAt", "reason", "size"])
      .where("roomId", "=", roomId)
      .orderBy("createdAt", "desc").orderBy("id", "desc")
      .limit(limit).execute();
    return rows.map((row) => ({ ...row, id: String(row.id), clock: Number(row.clock) }));
  }

  /** One version with its document, or `null` (also when it belongs to another room). */
  async get(
    roomId: string,
    versionId: string,
  ): Promise<(VersionInfo & { snapshot: DocumentSnapshot }) | null> {
    if (!/^\d{1,18}$/.test(versionId)) return null;
    const row = await this.#database.db.selectFrom("room_history").selectAll()
      .where("roomId", "=", roomId).where("id", "=", Number(versionId)).executeTakeFirst();
    if (!row) return null;
    const { data, ...info } = row;
    return {
      ...info,
      id: String(info.id),
      clock: Number(info.clock),
      snapshot: await decodeSnapshot(data),
    };
  }

  /** Removes every version of a room (hard delete). */
  async deleteRoom(roomId: string): Promise<void> {
    await this.#database.db.deleteFrom("room_history").where("roomId", "=", roomId).execute();
  }

  /**
   * Applies `policy` to one room. Returns the number of versions removed. Reads only the versions
   * that can go (at least `policy.denseMs` old) and the room's newest one, not the whole history (a
   * busy room keeps ~10,000 versions in its dense day).
   */
  async prune(roomId: string, policy: RetentionPolicy, now = Date.now()): Promise<number> {
    const db = this.#database.db;
    const newest = await db.selectFrom("room_history").select(["id", "createdAt"])
      .where("roomId", "=", roomId).orderBy("createdAt", "desc").orderBy("id", "desc")
      .limit(1).executeTakeFirst();
    if (!newest) return 0;
    const candidates = await db.selectFrom("room_history").select(["id", "createdAt"])
      .where("roomId", "=", roomId).where("createdAt", "<=", now - policy.denseMs)
      .where("id", "!=", newest.id)
      .orderBy("createdAt", "desc").orderBy("id", "desc").execute();
    // The newest version leads the list: thin() keeps index 0 whatever its age. Versions in the
    // dense window (age < denseMs, hence `<=` above) are never dropped and take no bucket, so
    // leaving them out changes nothing.
    const doomed = thin([newest, ...candidates], policy, now);
    if (doomed.length === 0) return 0;
    await db.deleteFrom("room_history").where("roomId", "=", roomId).where("id", "in", doomed)
      .execute();
    return doomed.length;
  }
}

/** Ids (of `rows`, newest first) that `policy` drops. */
export function thin(
  rows: readonly { id: number; createdAt: number }[],
  policy: RetentionPolicy,
  now: number,
): number[] {
  const doomed: number[] = [];
  const seenBuckets = new Set<number>();
  rows.forEach((row, index) => {
    const age = now - row.createdAt;
    if (index === 0 || age < policy.denseMs) return;
    if (age > policy.maxAgeMs) {
      doomed.push(row.id);
      return;
    }
    const bucket = Math.floor(row.createdAt / policy.bucketMs);
    if (seenBuckets.has(bucket)) doomed.push(row.id);
    else seenBuckets.add(bucket);
  });
  return doomed;
}

/**
 * A room is pruned at most this often by one recorder. Versions only leave the dense window with
 * time, so pruning on every write (one per 8 s in a busy room) redid the same work; ten minutes
 * late only keeps a few extra rows a little longer.
 */
const PRUNE_EVERY_MS = 10 * 60_000;

/** Versions stored with one statement at most (documents are compressed one per turn first). */
const MAX_BATCH_VERSIONS = 50;
/** Interval versions fall due on multiples of this at most (ms), so that many rooms' come together. */
const VERSION_ALIGN_MS = 1_000;

/**
 * A document this big (uncompressed) or bigger waits one more interval between versions per
 * multiple of it: copying, compressing and storing a 25 MB document every 8 s took the serving
 * thread 100 ms and more each time (with embedded PGlite) while its users were editing.
 */
export const LARGE_VERSION_BYTES = 4 * 1024 * 1024;

/** Options of {@link HistoryRecorder}. */
export interface HistoryRecorderOptions {
  history: HistoryStore;
  /** Where the documents are read from (the source of truth, not an isolate's cache). */
  store: RoomStore;
  log: Logger;
  /** At most one version per room per this many ms while it changes (default 8000). */
  intervalMs?: number;
  retention?: RetentionPolicy;
}

interface RoomState {
  /** Clock of the last version written (or found written). */
  savedClock: number;
  /** Latest clock this isolate committed. */
  latestClock: number;
  lastSavedAt: number;
  /** Uncompressed size of the last version (bytes): big documents wait longer between versions. */
  lastSize: number;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/** Turns room hooks into versions. One per isolate. */
export class HistoryRecorder {
  readonly #options: HistoryRecorderOptions;
  readonly #intervalMs: number;
  readonly #rooms = new Map<string, RoomState>();
  readonly #inFlight = new Set<Promise<unknown>>();
  /** Serialises writes per room, so a leave never races the timer's write. */
  readonly #chains = new Map<string, Promise<unknown>>();
  /**
   * Writes take turns for the whole isolate, each after a macrotask turn: with embedded PGlite a
   * write runs on this thread (~50 ms for a 5,000-shape room), and 100 rooms emptied at once wrote
   * back to back without letting a socket in (a 1.4 s stall in the benchmark).
   */
  #writeTurn: Promise<unknown> = Promise.resolve();
  /**
   * Versions waiting for their turn: one turn stores all of them (up to {@link MAX_BATCH_VERSIONS})
   * with one statement. Many small rooms' versions otherwise cost a statement each.
   */
  #waiting: {
    version: PendingVersion;
    stored: (version: VersionInfo | null) => void;
    failed: (error: unknown) => void;
  }[] = [];
  /** When each room was last pruned here, oldest first (re-inserted on each prune). */
  readonly #prunedAt = new Map<string, number>();
  #stopped = false;
  #readLoaded: ((roomId: string) => DocumentCopy | undefined) | undefined;

  constructor(options: HistoryRecorderOptions) {
    this.#options = options;
    this.#intervalMs = options.intervalMs ?? 8_000;
  }

  /**
   * Where a room loaded on this isolate can be copied from without reading it back from the store:
   * its cache is the document at its clock, and a version at that clock is as true as any (reading
   * and parsing 5,000 records from KV took ~200 ms of the thread that serves the room's sessions).
   */
  readLoadedRooms(read: (roomId: string) => DocumentCopy | undefined): void {
    this.#readLoaded = read;
  }

  /** Hook: a commit on this isolate moved `roomId` to `clock`. */
  onDocumentChanged(roomId: string, clock: number): void {
    if (this.#stopped) return;
    const state = this.#state(roomId);
    state.latestClock = Math.max(state.latestClock, clock);
    if (state.timer !== undefined) return;
    const interval = this.#intervalMs * (1 + Math.floor(state.lastSize / LARGE_VERSION_BYTES));
    // Due at the next multiple of an eighth of the interval (a second by default): the versions of
    // rooms due within it then wait for the same write turn and are stored together.
    const align = Math.min(VERSION_ALIGN_MS, this.#intervalMs / 8);
    const due = Math.ceil((state.lastSavedAt + interval) / align) * align;
    const wait = Math.max(0, due - Date.now());
    state.timer = setTimeout(() => {
      state.timer = undefined;
      // The interval counts from this start, not from when the write ends: otherwise every commit
      // during a slow write (a big room) would start the next one at once.
      state.lastSavedAt = Date.now();
      this.#save(roomId, VersionReason.interval);
    }, wait);
  }

  /** Hook: the last session of `roomId` on this isolate left: write a version now if it changed. */
  onLastSessionLeft(roomId: string): void {
    if (this.#stopped) return;
    const state = this.#rooms.get(roomId);
    if (state?.timer !== undefined) {
      clearTimeout(state.timer);
      state.timer = undefined;
    }
    // Copied now, while the room is still loaded: the write runs later, often after the room was
    // unloaded, and would then read the whole document back from the store.
    const changed = !state || state.latestClock < 0 || state.latestClock > state.savedClock;
    const loaded = changed ? this.#readLoaded?.(roomId) : undefined;
    this.#save(roomId, VersionReason.last_leave, loaded).finally(() => {
      const current = this.#rooms.get(roomId);
      if (current && current.timer === undefined && current.savedClock >= current.latestClock) {
        this.#rooms.delete(roomId);
      }
    });
  }

  /** Writes a version now (after a restore: always). */
  saveNow(roomId: string, reason: VersionReason): Promise<VersionInfo | null> {
    return this.#save(roomId, reason);
  }

  #state(roomId: string): RoomState {
    let state = this.#rooms.get(roomId);
    if (!state) {
      state = { savedClock: -1, latestClock: -1, lastSavedAt: 0, lastSize: 0, timer: undefined };
      this.#rooms.set(roomId, state);
    }
    return state;
  }

  #save(
    roomId: string,
    reason: VersionReason,
    loaded?: DocumentCopy,
  ): Promise<VersionInfo | null> {
    const previous = this.#chains.get(roomId) ?? Promise.resolve();
    const run = previous.then(() => this.#write(roomId, reason, loaded)).catch(
      (error) => {
        this.#options.log.warn("history write failed", { roomId, error });
        return null;
      },
    );
    this.#chains.set(roomId, run);
    this.#inFlight.add(run);
    run.finally(() => {
      this.#inFlight.delete(run);
      if (this.#chains.get(roomId) === run) this.#chains.delete(roomId);
    });
    return run;
  }

  #inTurn<T>(write: () => Promise<T>): Promise<T> {
    const run = this.#writeTurn.then(macrotask).then(write);
    this.#writeTurn = run.catch(() => {});
    return run;
  }

  /** Stores `version` in the next turn, with every other version waiting by then. */
  #store(version: PendingVersion): Promise<VersionInfo | null> {
    const { promise, resolve, reject } = Promise.withResolvers<VersionInfo | null>();
    this.#waiting.push({ version, stored: resolve, failed: reject });
    if (this.#waiting.length === 1) void this.#inTurn(() => this.#storeWaiting());
    return promise;
  }

  async #storeWaiting(): Promise<void> {
    const batch = this.#waiting.splice(0, MAX_BATCH_VERSIONS);
    if (this.#waiting.length > 0) void this.#inTurn(() => this.#storeWaiting());
    try {
      const stored = await this.#options.history.addBatch(batch.map((w) => w.version));
      batch.forEach((waiting, i) => waiting.stored(stored[i] ?? null));
    } catch (error) {
      for (const waiting of batch) waiting.failed(error);
    }
  }

  async #write(
    roomId: string,
    reason: VersionReason,
    loaded?: DocumentCopy,
  ): Promise<VersionInfo | null> {
    const state = this.#state(roomId);
    // Nothing committed here since the last version: no need to read the document at all (for a
    // room no longer loaded that would be a full read from the store).
    if (
      reason !== VersionReason.restore && state.latestClock >= 0 &&
      state.latestClock <= state.savedClock
    ) return null;
    const snapshot = this.#readLoaded?.(roomId) ?? loaded ??
      await this.#inTurn(() => readRoomText(this.#options.store, roomId));
    if (!snapshot) return null;
    // Only when the clock moved since the last version (restores always count).
    if (reason !== VersionReason.restore && snapshot.clock <= state.savedClock) return null;
    const now = Date.now();
    const version = reason === VersionReason.restore
      ? await this.#inTurn(() => this.#options.history.add(roomId, snapshot, reason, now))
      : await this.#store({ roomId, snapshot, reason, createdAt: now });
    state.savedClock = Math.max(state.savedClock, snapshot.clock);
    state.latestClock = Math.max(state.latestClock, snapshot.clock);
    state.lastSavedAt = now;
    if (version) state.lastSize = version.size;
    const retention = this.#options.retention;
    if (version && retention && this.#claimPrune(roomId, now)) {
      await this.#inTurn(() => this.#options.history.prune(roomId, retention, now));
    }
    return version;
  }

  /**
   * Whether `roomId` is due a prune, recording it as pruned at `now` if so (also when the prune then
   * fails: a failing database is not retried on every write).
   */
  #claimPrune(roomId: string, now: number): boolean {
    const last = this.#prunedAt.get(roomId);
    if (last !== undefined && now - last < PRUNE_EVERY_MS) return false;
    // Forget rooms whose last prune is too old to matter, from the front (the map is in prune order),
    // so rooms that went quiet do not stay in the map for the isolate's life.
    for (const [room, at] of this.#prunedAt) {
      if (now - at < PRUNE_EVERY_MS) break;
      this.#prunedAt.delete(room);
    }
    this.#prunedAt.delete(roomId);
    this.#prunedAt.set(roomId, now);
    return true;
  }

  /** Shutdown: writes pending versions (rooms changed since their last one), then stops. */
  async flush(): Promise<void> {
    const pending = [...this.#rooms.entries()].filter(([, state]) => state.timer !== undefined);
    for (const [, state] of pending) {
      clearTimeout(state.timer);
      state.timer = undefined;
    }
    await Promise.all(pending.map(([roomId]) => this.#save(roomId, VersionReason.interval)));
    this.#stopped = true;
    while (this.#inFlight.size > 0) await Promise.all([...this.#inFlight]);
    for (const state of this.#rooms.values()) clearTimeout(state.timer);
    this.#rooms.clear();
  }
}

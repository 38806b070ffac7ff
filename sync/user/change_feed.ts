/**
 * The per-process reader of the `user_change` table: wakes up on the `user_changes` NOTIFY, on a timer (so a
 * missed notification only delays delivery), and catches up by sequence number.
 *
 * Seqs are taken when a row is written but become visible at commit, so they can appear out of order: a
 * lower seq may commit after a higher one was read, and a rolled-back transaction leaves a hole forever. The
 * reader therefore remembers the holes below the highest seq it has seen and re-reads them for
 * `gapTimeoutMs` before giving up on them, and remembers which seqs it already delivered so that nothing is
 * delivered twice (the mutating isolate delivers its own changes first, see {@link ChangeFeed.deliverOwn}).
 *
 * @module
 */
import type { Database } from "../../db/database.ts";
import type { File } from "../../db/schema.ts";
import type { Logger } from "../../log.ts";
import {
  type ChangeRecord,
  latestSeq,
  pruneChanges,
  readChanges,
  seqsAbove,
} from "./change_records.ts";

/** The NOTIFY channel the change-table triggers publish on. */
export const USER_CHANGES_CHANNEL = "user_changes";

/** A change of a `file` row, for the room side (permissions, renames, deletion). */
export type FileChangeEvent =
  | { kind: "created"; fileId: string; after: File }
  | { kind: "updated"; fileId: string; before: File; after: File }
  | { kind: "deleted"; fileId: string; before: File };

/** Receives a batch of changes in seq order (except late-committing ones, which come when seen). */
export type ChangeListener = (changes: ChangeRecord[]) => void;
/** Receives one file change. */
export type FileChangeListener = (event: FileChangeEvent) => void;

/** Timing and test hooks of the feed. */
export interface ChangeFeedOptions {
  /** Catch-up period when no notification arrives (default 1000 ms). */
  pollIntervalMs?: number;
  /** How long a hole in the seqs is re-read before it is given up as rolled back (default 10 s). */
  gapTimeoutMs?: number;
  /** Changes older than this are deleted from the table (default 1 hour). */
  retentionMs?: number;
  /** How often old changes are pruned (default 60 s). */
  pruneIntervalMs?: number;
  /** Rows read per query (default 500). */
  batchSize?: number;
  /** Test hook: return `false` to drop a notification, as if it had been missed. */
  acceptNotification?: (payload: string) => boolean;
}

const MAX_GAPS = 10_000;
/** How far below the end a starting reader looks for in-flight seqs. */
const START_WINDOW = 1_000;

/** Reads the change feed and fans it out to listeners in this process. */
export class ChangeFeed {
  readonly #database: Database;
  readonly #log: Logger;
  readonly #options: Required<Omit<ChangeFeedOptions, "acceptNotification">>;
  readonly #accept: (payload: string) => boolean;
  readonly #listeners = new Set<ChangeListener>();
  readonly #fileListeners = new Set<FileChangeListener>();
  /** Highest seq read from the table. */
  #maxSeen = 0;
  /** Seqs below {@link #maxSeen} not seen yet, with when the hole was noticed. */
  readonly #gaps = new Map<number, number>();
  /** Seqs delivered by {@link deliverOwn} that the reader has not read yet. */
  readonly #deliveredAhead = new Set<number>();
  #started: Promise<void> | undefined;
  #stopped = false;
  #running: Promise<void> | undefined;
  #again = false;
  #unlisten: (() => Promise<void>) | undefined;
  #pollTimer: ReturnType<typeof setInterval> | undefined;
  #pruneTimer: ReturnType<typeof setInterval> | undefined;

  constructor(database: Database, log: Logger, options: ChangeFeedOptions = {}) {
    this.#database = database;
    this.#log = log.child({ component: "user_change_feed" });
    this.#options = {
      pollIntervalMs: options.pollIntervalMs ?? 1_000,
      gapTimeoutMs: options.gapTimeoutMs ?? 10_000,
      retentionMs: options.retentionMs ?? 60 * 60 * 1_000,
      pruneIntervalMs: options.pruneIntervalMs ?? 60_000,
      batchSize: options.batchSize ?? 500,
    };
    this.#accept = options.acceptNotification ?? (() => true);
  }

  /** Subscribes to every change (starting the reader if needed). Returns the unsubscribe function. */
  subscribe(listener: ChangeListener): () => void {
    this.#listeners.add(listener);
    void this.ready().catch(() => {});
    return () => this.#listeners.delete(listener);
  }

  /**
   * Subscribes to changes of `file` rows made anywhere (this or another process, any route, plain SQL),
   * starting the reader if needed. Returns the unsubscribe function.
   */
  onFileChanged(listener: FileChangeListener): () => void {
    this.#fileListeners.add(listener);
    void this.ready().catch(() => {});
    return () => this.#fileListeners.delete(listener);
  }

  /** Starts the reader once; resolves when it is listening and positioned at the current end. */
  ready(): Promise<void> {
    if (this.#stopped) return Promise.reject(new Error("change feed stopped"));
    this.#started ??= this.#start();
    return this.#started;
  }

  /**
   * Every seq above this has not been delivered yet or may still be delivered (a pending hole). A snapshot
   * of user data taken now must treat the seqs above it that it already reflects as delivered.
   */
  get lowWatermark(): number {
    let low = this.#maxSeen;
    for (const seq of this.#gaps.keys()) low = Math.min(low, seq - 1);
    return low;
  }

  /**
   * Delivers changes the caller's own transaction just committed, ahead of the reader (which will then skip
   * them). Those the reader already delivered are skipped here.
   */
  deliverOwn(records: ChangeRecord[]): void {
    const fresh: ChangeRecord[] = [];
    for (const record of records) {
      if (record.seq > this.#maxSeen) {
        if (this.#deliveredAhead.has(record.seq)) continue;
        this.#deliveredAhead.add(record.seq);
      } else if (!this.#gaps.delete(record.seq)) {
        continue;
      }
      fresh.push(record);
    }
    this.#dispatch(fresh);
  }

  /** Catches up now (a notification arrived, or a test wants it). */
  poke(): void {
    if (this.#stopped || !this.#started) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = this.#loop().finally(() => (this.#running = undefined));
  }

  /** Stops the reader: timers, LISTEN, and waits for a catch-up in progress. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#pollTimer);
    clearInterval(this.#pruneTimer);
    await this.#started?.catch(() => {});
    clearInterval(this.#pollTimer);
    clearInterval(this.#pruneTimer);
    await this.#unlisten?.().catch(() => {});
    await this.#running;
  }

  async #start(): Promise<void> {
    this.#maxSeen = await latestSeq(this.#database.db);
    // Seqs just below the end that are not visible yet may belong to transactions still in flight: watch
    // them like any other hole so their changes are not lost.
    const present = new Set(
      await seqsAbove(this.#database.db, Math.max(0, this.#maxSeen - START_WINDOW)),
    );
    const now = Date.now();
    for (let seq = Math.max(1, this.#maxSeen - START_WINDOW + 1); seq < this.#maxSeen; seq++) {
      if (!present.has(seq)) this.#gaps.set(seq, now);
    }
    this.#unlisten = await this.#database.notifier.listen(USER_CHANGES_CHANNEL, (payload) => {
      if (this.#accept(payload)) this.poke();
    });
    if (this.#stopped) return;
    this.#pollTimer = setInterval(() => this.poke(), this.#options.pollIntervalMs);
    this.#pruneTimer = setInterval(() => void this.#prune(), this.#options.pruneIntervalMs);
    // Anything committed between reading the end and listening.
    queueMicrotask(() => this.poke());
  }

  async #loop(): Promise<void> {
    do {
      this.#again = false;
      try {
        await this.#catchUp();
      } catch (error) {
        // The next notification or tick retries from the same position.
        if (!this.#stopped) this.#log.warn("change feed catch-up failed", { error });
      }
    } while (this.#again && !this.#stopped);
  }

  async #catchUp(): Promise<void> {
    const now = Date.now();
    for (const [seq, since] of this.#gaps) {
      if (now - since > this.#options.gapTimeoutMs) this.#gaps.delete(seq);
    }
    for (;;) {
      if (this.#stopped) return;
      const records = await readChanges(
        this.#database.db,
        this.#maxSeen,
        [...this.#gaps.keys()],
        this.#options.batchSize,
      );
      const fresh: ChangeRecord[] = [];
      const seen = new Set<number>();
      let newMax = this.#maxSeen;
      for (const record of records) {
        seen.add(record.seq);
        if (record.seq <= this.#maxSeen) {
          // A hole filled by a late commit (unless deliverOwn already filled it).
          if (this.#gaps.delete(record.seq)) fresh.push(record);
          continue;
        }
        newMax = Math.max(newMax, record.seq);
        if (this.#deliveredAhead.delete(record.seq)) continue;
        fresh.push(record);
      }
      for (let seq = this.#maxSeen + 1; seq < newMax; seq++) {
        if (!seen.has(seq) && !this.#deliveredAhead.delete(seq)) this.#gaps.set(seq, now);
      }
      this.#maxSeen = newMax;
      for (const seq of this.#deliveredAhead) if (seq <= newMax) this.#deliveredAhead.delete(seq);
      if (this.#gaps.size > MAX_GAPS) {
        for (const seq of [...this.#gaps.keys()].slice(0, this.#gaps.size - MAX_GAPS)) {
          this.#gaps.delete(seq);
        }
      }
      this.#dispatch(fresh);
      if (records.length < this.#options.batchSize) return;
    }
  }

  #dispatch(records: ChangeRecord[]): void {
    if (records.length === 0) return;
    for (const listener of this.#listeners) {
      try {
        listener(records);
      } catch (error) {
        this.#log.error("change listener failed", { error });
      }
    }
    if (this.#fileListeners.size === 0) return;
    for (const record of records) {
      const event = toFileEvent(record);
      if (!event) continue;
      for (const listener of this.#fileListeners) {
        try {
          listener(event);
        } catch (error) {
          this.#log.error("file change listener failed", { error });
        }
      }
    }
  }

  async #prune(): Promise<void> {
    if (this.#stopped) return;
    try {
      await pruneChanges(this.#database.db, Date.now() - this.#options.retentionMs);
    } catch (error) {
      if (!this.#stopped) this.#log.warn("change feed prune failed", { error });
    }
  }
}

function toFileEvent(record: ChangeRecord): FileChangeEvent | undefined {
  if (record.table !== "file") return undefined;
  const row = record.row as unknown as File;
  switch (record.event) {
    case "insert":
      return { kind: "created", fileId: row.id, after: row };
    case "update":
      return {
        kind: "updated",
        fileId: row.id,
        before: (record.before ?? record.row) as unknown as File,
        after: row,
      };
    case "delete":
      return { kind: "deleted", fileId: row.id, before: row };
    default:
      // grant/revoke change who sees the file, not the file.
      return undefined;
  }
}

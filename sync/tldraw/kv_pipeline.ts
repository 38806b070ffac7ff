/**
 * Pipelined commits of one room on a remote KV (`KV_REMOTE`): the room's next commit is issued
 * while earlier ones are still in flight, so that a busy room commits once per push group rather
 * than once per round trip. Each commit writes only its own steps.
 *
 * A normal commit checks the meta's versionstamp, which is unknown until the commit before it has
 * returned. A pipeline instead rests on two rules:
 *
 * - **Fencing.** Every commit that is not pipelined (any isolate's, and tombstone pruning, and room
 *   deletion) also writes the room's `lease` key. A pipeline starts after this isolate's own
 *   normal commit, whose versionstamp is then the lease's, and each pipelined commit checks it:
 *   once anyone else writes the room, every pipelined commit still in flight fails.
 * - **A chain of markers.** Commit `n` lands only after commit `n − 1` has: it checks that marker
 *   `n − 1` (`pipe, id, n − 1`) is gone, which only commit `n − 1` deletes, and consumes its own
 *   marker `n`, checked at the versionstamp it was created with. A check can only name a known
 *   versionstamp or absence, so markers are created ahead by commits that have returned: the normal
 *   commit that starts the pipeline creates markers 1…{@link PIPELINE_DEPTH}, and commit `n`
 *   creates marker `n + PIPELINE_DEPTH`. So the KV holds a complete prefix of the steps whatever
 *   order the operations reach it in, and the meta each commit writes is the newest.
 *
 * A commit that reached the KV before the one ahead of it had landed fails; it is sent once more
 * after that one landed. A commit that fails again was fenced: the pipeline is over, the commits
 * after it fail too (none of them can land), and the room commits normally again. Markers left
 * by a pipeline that ended expire; a pipeline stops taking commits well before its oldest could.
 *
 * @module
 */
import type { BatchedWrite } from "./kv_batcher.ts";
import type { LogEntry, LogSlots } from "./kv_log_ring.ts";
import { MergedWrites, type Writes } from "./kv_writes.ts";
import { CommitError, type CommitResult } from "./room_store.ts";

/**
 * Commits of one room in flight at once, and how far ahead markers are created. Measured on a KV
 * 20 ms away (1 room × 20 clients, the saturation ramp, three runs each): 16 sustained 12,194,
 * 17,301 and 17,301 pushes/s where 8 sustained 7,875, 17,301 and 13,308; a pipeline's first commit
 * then creates 16 markers instead of 8.
 */
export const PIPELINE_DEPTH = 16;
/** Markers expire after this even if no commit consumes them (ms). */
export const PIPE_KEY_TTL_MS = 3_600_000;
/** A pipeline takes no commits after this (ms): its markers must still be there when checked. */
export const PIPELINE_MAX_AGE_MS = PIPE_KEY_TTL_MS / 2;
/** Bytes of a lease or marker key and its value, with a margin. */
export const PIPE_KEY_SIZE = 100;

/** One step as the store prepared it: its record writes and its change-log entry. */
export interface PreparedStep {
  clock: number;
  writes: Writes;
  entry: LogEntry;
  size: number;
}

/** A pipelined commit's checks and marker writes. */
export interface PipelinedCommit<M> {
  /** Its number in the pipeline (1, 2, …). */
  readonly n: number;
  /** Its steps. */
  readonly steps: readonly PreparedStep[];
  /** The clock it leaves the room at. */
  readonly endClock: number;
  /** The meta it writes. */
  readonly meta: M;
  /** The versionstamp its own marker `n` was created with (it checks and deletes it). */
  readonly marker: string;
  /** Marker `n - 1`, which must be gone (0: the first commit, which has none). */
  readonly after: number;
  /** The marker it creates, for commit `n + PIPELINE_DEPTH`. */
  readonly ahead: number;
}

/** Where a commit's operation stands. */
type State =
  | { kind: "pending" }
  | { kind: "landed"; versionstamp: string }
  | { kind: "failed" }
  | { kind: "threw"; error: unknown };

/** Sends a commit's operation: its versionstamp if it landed, `null` if a check failed. */
export type SendCommit = () => Promise<string | null>;

interface Tracked<M> {
  readonly commit: PipelinedCommit<M>;
  readonly send: SendCommit;
  state: State;
  /** Sent a second time (after the commit ahead of it landed). */
  resent: boolean;
  resolve(result: CommitResult): void;
  reject(error: unknown): void;
}

/** The first markers, which the normal commit starting a pipeline creates. */
export function firstMarkers(): number[] {
  return Array.from({ length: PIPELINE_DEPTH }, (_, i) => i + 1);
}

/** A new pipeline id: the markers' key part. */
export function newPipelineId(): string {
  return crypto.randomUUID().slice(0, 13);
}

/**
 * The pipeline of one room: numbering, the markers each commit checks, and how each is settled.
 * The store builds the operations and sends them through the {@link SendCommit} it issues.
 */
export class RoomPipeline<M> {
  /** The markers' key part. */
  readonly id: string;
  /** The lease versionstamp every commit of this pipeline checks (also that of markers 1…). */
  readonly lease: string;
  readonly #startedAt: number;
  #confirmedClock: number;
  #issuedClock: number;
  #nextN = 1;
  #inFlight: Tracked<M>[] = [];
  #ended = false;
  /** Versionstamps of landed commits whose markers ahead are not consumed yet, by `n`. */
  readonly #stamps = new Map<number, string>();
  /** The meta of the last commit known to have landed, and its versionstamp. */
  #landed: { meta: M; versionstamp: string };

  constructor(id: string, lease: string, clock: number, meta: M, now = Date.now()) {
    this.id = id;
    this.lease = lease;
    this.#startedAt = now;
    this.#confirmedClock = clock;
    this.#issuedClock = clock;
    this.#landed = { meta, versionstamp: lease };
  }

  /**
   * Whether a commit after `expectedClock` can join the pipeline now: not once it ended or grew
   * old, not while a commit is in doubt, and only once its marker's creator has landed.
   */
  accepts(expectedClock: number, now = Date.now()): boolean {
    return !this.#ended && expectedClock === this.#issuedClock &&
      this.#inFlight.length < PIPELINE_DEPTH && this.#marker(this.#nextN) !== undefined &&
      now - this.#startedAt < PIPELINE_MAX_AGE_MS &&
      this.#inFlight.every((c) => c.state.kind === "pending" || c.state.kind === "landed");
  }

  /** Whether the pipeline has ended (a commit failed): the room commits normally again. */
  get over(): boolean {
    return this.#ended;
  }

  /** The meta of the last commit known to have landed. */
  get landed(): { meta: M; versionstamp: string } {
    return this.#landed;
  }

  /** The clock of the last commit known to have landed. */
  get confirmedClock(): number {
    return this.#confirmedClock;
  }

  /** The next commit, of `steps`, writing `meta` (after {@link accepts}). */
  next(steps: readonly PreparedStep[], meta: M): PipelinedCommit<M> {
    const n = this.#nextN;
    const marker = this.#marker(n);
    if (marker === undefined) throw new Error("pipeline: no marker for the next commit");
    return {
      n,
      steps,
      endClock: steps.at(-1)?.clock ?? this.#issuedClock,
      meta,
      marker,
      after: n - 1,
      ahead: n + PIPELINE_DEPTH,
    };
  }

  /** Sends `commit` (from {@link next}) with `send`; the promise settles it, in order. */
  issue(commit: PipelinedCommit<M>, send: SendCommit): Promise<CommitResult> {
    this.#nextN = commit.n + 1;
    this.#issuedClock = commit.endClock;
    return new Promise((resolve, reject) => {
      const tracked: Tracked<M> = {
        commit,
        send,
        state: { kind: "pending" },
        resent: false,
        resolve,
        reject,
      };
      this.#inFlight.push(tracked);
      this.#send(tracked);
    });
  }

  #marker(n: number): string | undefined {
    return n <= PIPELINE_DEPTH ? this.lease : this.#stamps.get(n - PIPELINE_DEPTH);
  }

  #send(tracked: Tracked<M>): void {
    tracked.state = { kind: "pending" };
    tracked.send().then(
      (versionstamp) =>
        this.#returned(
          tracked,
          versionstamp === null ? { kind: "failed" } : { kind: "landed", versionstamp },
        ),
      (error) => this.#returned(tracked, { kind: "threw", error }),
    );
  }

  #returned(tracked: Tracked<M>, state: State): void {
    if (!this.#inFlight.includes(tracked)) return; // settled already (the pipeline ended)
    tracked.state = state;
    this.#settle();
  }

  /** Settles what can be, oldest first. */
  #settle(): void {
    const flight = this.#inFlight;
    while (flight.length > 0) {
      const oldest = flight[0]!;
      const state = oldest.state;
      switch (state.kind) {
        case "pending":
          return;
        case "landed":
          flight.shift();
          this.#landedAt(oldest.commit, state.versionstamp);
          oldest.resolve({ ok: true, clock: oldest.commit.endClock });
          break;
        case "failed":
          // It may have reached the KV before the commit ahead of it had landed (which now has):
          // once more. Failing again, it was fenced.
          if (!oldest.resent && !this.#ended) {
            oldest.resent = true;
            this.#send(oldest);
            return;
          }
          this.#end(flight.splice(0), (c) => c.resolve({ ok: false, error: CommitError.conflict }));
          return;
        case "threw": {
          // Whether it landed is unknown, unless a later commit landed (then it did, too).
          this.#ended = true;
          const later = flight.findLastIndex((c) => c.state.kind === "landed");
          if (later > 0) {
            for (const c of flight.splice(0, later)) this.#confirm(c);
            break;
          }
          if (flight.some((c) => c.state.kind === "pending")) return;
          this.#end(flight.splice(0), (c) => c.reject(state.error));
          return;
        }
        default:
          state satisfies never;
      }
    }
  }

  #landedAt(commit: PipelinedCommit<M>, versionstamp: string): void {
    this.#stamps.set(commit.n, versionstamp);
    // Marker `n` was created by commit `n - DEPTH` and is consumed now.
    this.#stamps.delete(commit.n - PIPELINE_DEPTH);
    this.#landed = { meta: commit.meta, versionstamp };
    this.#confirmedClock = commit.endClock;
  }

  /** Settles a commit that landed without telling its versionstamp (a later one landed). */
  #confirm(tracked: Tracked<M>): void {
    this.#confirmedClock = tracked.commit.endClock;
    tracked.resolve({ ok: true, clock: tracked.commit.endClock });
  }

  #end(left: Tracked<M>[], settle: (tracked: Tracked<M>) => void): void {
    this.#ended = true;
    for (const tracked of left) settle(tracked);
  }
}

/** Keys of one room's pipeline. */
export interface PipelineKeys {
  lease: Deno.KvKey;
  marker(n: number): Deno.KvKey;
}

/**
 * The atomic write of `commit`: the lease and marker checks, its steps merged (the last write of a
 * key wins) with their log entries in `slots`, its markers, and its meta (`metaSize` bytes at
 * most). `undefined` when that does not fit one operation.
 */
export function pipelinedWrite<M>(
  keys: PipelineKeys,
  slots: LogSlots,
  lease: string,
  commit: PipelinedCommit<M>,
  metaKey: Deno.KvKey,
  metaSize: number,
): Omit<BatchedWrite, "group"> | undefined {
  const merged = new MergedWrites();
  for (const step of commit.steps) {
    const log = slots.costWith(step.size);
    const extraBytes = metaSize + log.bytes + 2 * PIPE_KEY_SIZE;
    if (!merged.tryMerge(step.writes, 1 + log.mutations + 2, extraBytes)) return undefined;
    slots.add(step.clock, step.entry, step.size);
  }
  const writes = merged.toWrites();
  for (const m of slots.writes().list) writes.add(m);
  const checked: Deno.AtomicCheck[] = [
    { key: keys.lease, versionstamp: lease },
    { key: keys.marker(commit.n), versionstamp: commit.marker },
  ];
  if (commit.after > 0) checked.push({ key: keys.marker(commit.after), versionstamp: null });
  return {
    checks: checked.length,
    checked,
    mutations: 3 + writes.list.length,
    bytes: metaSize + writes.bytes + 2 * PIPE_KEY_SIZE,
    apply(op) {
      op.check(...checked);
      writes.applyTo(op);
      op.delete(keys.marker(commit.n));
      op.set(keys.marker(commit.ahead), 1, { expireIn: PIPE_KEY_TTL_MS });
      op.set(metaKey, commit.meta);
    },
  };
}

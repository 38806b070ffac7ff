/**
 * Pipelined commits of one room on a remote KV (`KV_REMOTE`): the room's next commit is issued
 * while earlier ones are still in flight, so that a busy room commits once per push group rather
 * than once per round trip.
 *
 * A normal commit checks the meta's versionstamp, which is unknown until the commit before it has
 * returned. A pipeline instead rests on three rules:
 *
 * - **Fencing.** Every commit that is not pipelined (any isolate's, and tombstone pruning, and room
 *   deletion) also writes the room's `lease` key. A pipeline starts after this isolate's own
 *   normal commit, whose versionstamp is then the lease's, and each pipelined commit checks it:
 *   once anyone else writes the room, every pipelined commit still in flight fails.
 * - **Cumulative commits.** A pipelined commit carries every step since the last commit known to
 *   have landed, not only its own, so whichever commit lands leaves a complete prefix of the steps.
 * - **No going back.** Commit `n` writes `pipe, lease, k` for every `k` it covers and checks that
 *   `pipe, lease, n + 1` is absent: on a KV where concurrent operations may land out of order, an
 *   older commit fails once a newer one (which covers it) has landed.
 *
 * A commit is settled in order, `ok` when it or a later one landed. If one failed and none after it
 * landed, the pipeline is over: its commits fail and the room commits normally again (which also
 * tells it whether the steps landed after all). The `pipe` keys are deleted by later commits once
 * nothing checks them, and expire in any case.
 *
 * @module
 */
import type { BatchedWrite } from "./kv_batcher.ts";
import type { LogEntry, LogSlots } from "./kv_log_ring.ts";
import { MergedWrites, type Writes } from "./kv_writes.ts";
import { CommitError, type CommitResult } from "./room_store.ts";

/** Commits of one room in flight at once. */
export const PIPELINE_DEPTH = 8;
/**
 * Steps of one room in flight (not known to have landed) beyond which the room waits for its oldest
 * commit before planning the next group (which then holds what arrived meanwhile): every commit
 * carries them all, so without a bound a saturated room writes each step about as many times as
 * commits are in flight (measured on a 20 ms KV at 4,660 pushes/s: 6.6 carried steps per own step,
 * server CPU 105 %; with this bound 2.4 and 46 %, the same rate sustained). A room at a human pace
 * never has this many in flight.
 */
export const PIPELINE_CARRY = 32;
/** The `pipe` keys expire after this even if no commit deletes them (ms). */
export const PIPE_KEY_TTL_MS = 3_600_000;
// Pipe keys one commit deletes at most.
const MAX_PIPE_DELETES = 16;
// Bytes of a lease or pipe key and its value, with a margin.
const PIPE_KEY_SIZE = 100;

/** One step as the store prepared it: its record writes and its change-log entry. */
export interface PreparedStep {
  clock: number;
  writes: Writes;
  entry: LogEntry;
  size: number;
}

/** How a commit's operation returned. */
type Returned =
  | { kind: "pending" }
  | { kind: "landed"; versionstamp: string }
  | { kind: "failed" }
  | { kind: "threw"; error: unknown };

/** A pipelined commit, from its issue to its settlement. */
export interface PipelinedCommit<M> {
  /** Its number in the pipeline (1, 2, …). */
  readonly n: number;
  /** The steps it carries: those of the commits not known to have landed, then its own. */
  readonly steps: readonly PreparedStep[];
  /** The clock it leaves the room at. */
  readonly endClock: number;
  /** The meta it writes. */
  readonly meta: M;
  /** `pipe` keys it sets (`n` of the commits it covers). */
  readonly covers: readonly number[];
  /** `pipe` keys it deletes. */
  readonly deletes: readonly number[];
}

interface Tracked<M> extends PipelinedCommit<M> {
  /** Its own steps (not those it carries for earlier commits). */
  readonly own: readonly PreparedStep[];
  returned: Returned;
  resolve(result: CommitResult): void;
  reject(error: unknown): void;
}

/**
 * The pipeline of one room: which commits are in flight, what the next one must carry, and how
 * each is settled. Pure bookkeeping; the store builds and sends the operations.
 */
export class RoomPipeline<M> {
  /** The lease versionstamp every commit of this pipeline checks. */
  readonly lease: string;
  #confirmedClock: number;
  #confirmedN = 0;
  #nextN = 1;
  #issuedClock: number;
  /** Every commit numbered up to this has returned. */
  #returnedThrough = 0;
  /** Commits numbered above {@link #returnedThrough} that have returned. */
  readonly #returnedAhead = new Set<number>();
  /** `pipe` keys up to this are deleted. */
  #deletedThrough = 0;
  #inFlight: Tracked<M>[] = [];
  #ended = false;
  /** The meta of the last commit known to have landed, and its versionstamp. */
  #landed: { meta: M; versionstamp: string };

  constructor(lease: string, clock: number, meta: M) {
    this.lease = lease;
    this.#confirmedClock = clock;
    this.#issuedClock = clock;
    this.#landed = { meta, versionstamp: lease };
  }

  /**
   * Whether a commit after `expectedClock` can join the pipeline now: not while a commit that
   * failed may have been fenced (unless a later one landed, it was).
   */
  accepts(expectedClock: number): boolean {
    return !this.#ended && expectedClock === this.#issuedClock &&
      this.#inFlight.length < PIPELINE_DEPTH &&
      this.#inFlight.every((c) => c.returned.kind === "pending" || c.returned.kind === "landed");
  }

  /** Whether the pipeline has ended (a commit failed): the room commits normally again. */
  get over(): boolean {
    return this.#ended;
  }

  /** The meta of the last commit known to have landed. */
  get landed(): { meta: M; versionstamp: string } {
    return this.#landed;
  }

  /** The steps of the commits in flight that are not known to have landed, in clock order. */
  carried(): PreparedStep[] {
    return this.#inFlight.flatMap((commit) => commit.own);
  }

  /** The next commit with `own` steps (after {@link accepts}), writing `meta`. */
  next(own: readonly PreparedStep[], meta: M): PipelinedCommit<M> {
    const n = this.#nextN;
    const covers: number[] = [];
    for (let k = this.#confirmedN + 1; k <= n; k++) covers.push(k);
    const deletes: number[] = [];
    const deletable = Math.min(this.#confirmedN, this.#returnedThrough + 1);
    for (
      let k = this.#deletedThrough + 1;
      k <= deletable && deletes.length < MAX_PIPE_DELETES;
      k++
    ) {
      deletes.push(k);
    }
    return {
      n,
      steps: [...this.carried(), ...own],
      endClock: own.at(-1)?.clock ?? this.#issuedClock,
      meta,
      covers,
      deletes,
    };
  }

  /** Tracks `commit` (from {@link next}) as issued; the promise settles it in order. */
  issued(commit: PipelinedCommit<M>, own: readonly PreparedStep[]): Promise<CommitResult> {
    this.#nextN = commit.n + 1;
    this.#issuedClock = commit.endClock;
    return new Promise((resolve, reject) => {
      this.#inFlight.push({ ...commit, own, returned: { kind: "pending" }, resolve, reject });
    });
  }

  /** Commit `n`'s operation returned: `versionstamp` when it landed, `null` when a check failed. */
  returned(n: number, versionstamp: string | null): void {
    this.#record(n, versionstamp === null ? { kind: "failed" } : { kind: "landed", versionstamp });
  }

  /** Commit `n`'s operation threw: whether it landed is unknown. */
  threw(n: number, error: unknown): void {
    this.#record(n, { kind: "threw", error });
  }

  #record(n: number, returned: Returned): void {
    this.#returnedAhead.add(n);
    while (this.#returnedAhead.delete(this.#returnedThrough + 1)) this.#returnedThrough++;
    // Settled already: a later commit landed first (and this one failed because of it).
    const commit = this.#inFlight.find((c) => c.n === n);
    if (!commit) return;
    commit.returned = returned;
    this.#settle();
  }

  /** Settles the commits that can be, oldest first. */
  #settle(): void {
    const flight = this.#inFlight;
    const lastLanded = flight.findLastIndex((c) => c.returned.kind === "landed");
    if (lastLanded >= 0) {
      const landed = flight[lastLanded]!;
      const returned = landed.returned as { kind: "landed"; versionstamp: string };
      this.#confirmedClock = landed.endClock;
      this.#confirmedN = landed.n;
      this.#deletedThrough = Math.max(this.#deletedThrough, landed.deletes.at(-1) ?? 0);
      this.#landed = { meta: landed.meta, versionstamp: returned.versionstamp };
      // A commit that failed only because a later one had landed is committed by that one.
      for (const commit of flight.splice(0, lastLanded + 1)) {
        commit.resolve({ ok: true, clock: commit.endClock });
      }
    }
    if (flight.length === 0 || flight.some((c) => c.returned.kind === "pending")) return;
    // All that is left failed: nothing after the last landed commit was written.
    this.#ended = true;
    const threw = flight.find((c) => c.returned.kind === "threw")?.returned;
    for (const commit of flight.splice(0)) {
      if (threw?.kind === "threw") commit.reject(threw.error);
      else commit.resolve({ ok: false, error: CommitError.conflict });
    }
  }

  /** The clock of the last commit known to have landed. */
  get confirmedClock(): number {
    return this.#confirmedClock;
  }
}

/**
 * The atomic write of `commit`: the lease and no-going-back checks, every step it carries merged
 * (the last write of a key wins) with their log entries in `slots`, its pipe keys, and its meta
 * (`metaSize` bytes at most). `undefined` when that does not fit one operation.
 */
export function pipelinedWrite<M>(
  key: (...parts: Deno.KvKeyPart[]) => Deno.KvKey,
  slots: LogSlots,
  lease: string,
  commit: PipelinedCommit<M>,
  metaSize: number,
): Omit<BatchedWrite, "group"> | undefined {
  const keys = commit.covers.length + commit.deletes.length;
  const merged = new MergedWrites();
  for (const step of commit.steps) {
    const log = slots.costWith(step.size);
    const extraBytes = metaSize + log.bytes + keys * PIPE_KEY_SIZE;
    if (!merged.tryMerge(step.writes, 1 + log.mutations + keys, extraBytes)) return undefined;
    slots.add(step.clock, step.entry, step.size);
  }
  const writes = merged.toWrites();
  for (const m of slots.writes().list) writes.add(m);
  const leaseCheck = { key: key("lease"), versionstamp: lease };
  const newerCheck = { key: key("pipe", lease, commit.n + 1), versionstamp: null };
  return {
    checks: 2,
    checked: [leaseCheck, newerCheck],
    mutations: 1 + writes.list.length + keys,
    bytes: metaSize + writes.bytes + keys * PIPE_KEY_SIZE,
    apply(op) {
      op.check(leaseCheck, newerCheck);
      writes.applyTo(op);
      for (const k of commit.covers) {
        op.set(key("pipe", lease, k), 1, { expireIn: PIPE_KEY_TTL_MS });
      }
      for (const k of commit.deletes) op.delete(key("pipe", lease, k));
      op.set(key("meta"), commit.meta);
    },
  };
}

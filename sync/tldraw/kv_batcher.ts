/**
 * Group commit for Deno KV: writes issued while another is in flight are merged into one atomic
 * operation, within KV's limits. A local KV file has one writer at a time and each atomic operation
 * is one SQLite transaction, so one operation of 20 small writes costs little more than one write
 * (measured: 0.25 ms for 1 set, 0.6 ms for 20) — this is what lets many rooms, and several Workers
 * sharing the file, commit more than a few thousand times a second. On Deno Deploy it saves round
 * trips in the same way.
 *
 * Up to {@link BatchLimits.inFlight} operations (default 2) commit at once, so a write that just
 * missed one does not wait for it to end, and on Deno Deploy, whose KV is a network away, an
 * isolate is not limited to one operation per round trip. (Locally the file takes one at a time;
 * measured, 200 rooms × 5 clients on one isolate: the same throughput, push p99 245–294 ms instead
 * of 304–589 ms.) Writes of the same group (a room's commits: they check the same meta
 * versionstamp) are never merged, and never in two operations at once. If a merged operation
 * fails, every caller must still get the outcome its own operation would have had. When a check
 * failed and the writes say what they check ({@link BatchedWrite.checked}), one read of those keys
 * finds the writes whose checks can no longer hold (versionstamps only move forward): they fail,
 * and the others are committed again together. Under
 * many-room load with several isolates, where merged operations often carry a room that lost a
 * commit race, this costs one read and one more operation instead of splitting the batch in halves
 * down to the failing writes (measured, 200 rooms × 5 clients spread over 2 isolates: the isolate
 * losing the races made 3,400–4,900 operations per 5 s, half of them failed merges; with the read,
 * about 270). Otherwise (the operation threw, or the read found nothing stale) its halves are
 * retried apart, down to single writes.
 *
 * Writes that arrive apart merge only if one waits for the other: with {@link BatchLimits.linger}
 * set, while more distinct groups write than one per linger, a write waits up to that long for
 * others. Each local operation is one SQLite transaction with its fsync, about 190 µs of CPU
 * however few rooms it carries (measured: 5 rooms per operation, 65 µs each); at 100 rooms × 5
 * clients × 2 pushes/s a 2 ms linger took commits per push from 0.74 to 0.25 and server CPU down
 * by 10–18 %, at about 4 ms more push→ack p50 and a p99 a little higher (median of five runs 17
 * against 15 ms; a timer fires late on a busy event loop). A 1 ms linger merged less (0.47 commits
 * per push) and saved no measurable CPU. On a KV 20 ms away the same linger took commits per push
 * from 0.62 to 0.23 and server CPU from 71–75 % to 61–67 %, push→ack p50 26–27 → 28–29 ms, p99
 * 44 → 40–41 ms: each operation is a request, and fewer leave the isolate less to do. One busy
 * room never waits: nothing would join it.
 *
 * @module
 */

/** One write: its checks and mutations, applied to whatever operation carries it. */
export interface BatchedWrite {
  /** Writes of one group are never merged (e.g. `room:<id>` for commits checking its meta). */
  group: string;
  /**
   * Writes of one sequence are never merged either, and start in the order they were queued, but
   * several may be in flight at once (a room's pipelined commits: each checks that the one before
   * landed, which it cannot have within the same operation).
   */
  sequence?: string;
  checks: number;
  mutations: number;
  /** Approximate size of keys and values (bytes). */
  bytes: number;
  /**
   * The checks {@link apply} makes, if known: a failed merged operation then finds the writes whose
   * checks fail with one read instead of splitting the batch.
   */
  checked?: readonly Deno.AtomicCheck[];
  apply(op: Deno.AtomicOperation): void;
}

/** KV's limits per atomic operation, with a margin. */
export interface BatchLimits {
  checks: number;
  mutations: number;
  bytes: number;
  /**
   * Writes merged at most (bounds the halving fallback of an operation that throws). Room commits
   * are bounded by `checks` first (one each).
   */
  writes: number;
  /** Operations in flight at once (writes of one group are never in two of them). */
  inFlight: number;
  /**
   * Milliseconds a write may wait for writes of other groups to join its operation, when such
   * writes arrive more often than that (0: never wait). See {@link KvBatcher}.
   */
  linger: number;
}

// With 200 busy rooms per isolate a limit of 32 writes filled every operation (the queue waited
// behind them); room commits now fill operations up to the 90 checks KV allows (about 2 ms of
// SQLite for 90 room commits).
const DEFAULT_LIMITS: BatchLimits = {
  checks: 90,
  mutations: 990,
  bytes: 780_000,
  writes: 128,
  inFlight: 2,
  linger: 0,
};
// Writes waiting that end a linger at once: most of what merging saves is saved by then.
const LINGER_ENOUGH = 8;
// Window over which the rate of distinct groups writing is measured (ms).
const RATE_WINDOW_MS = 50;
// How long woken writeSlot callers get to issue their writes (microtask turns: at most, and
// without a new write).
const SLOT_MAX_TICKS = 64;
const SLOT_QUIET_TICKS = 8;
// kv.getMany reads at most 10 keys.
const GET_MANY_LIMIT = 10;

interface Pending {
  write: BatchedWrite;
  /** When it was queued (performance.now()). */
  at: number;
  resolve(result: Deno.KvCommitResult | Deno.KvCommitError): void;
  reject(error: unknown): void;
}

/** Merges concurrent atomic writes to one KV handle. */
export class KvBatcher {
  readonly #kv: Deno.Kv;
  readonly #limits: BatchLimits;
  #queue: Pending[] = [];
  /** Operations committing now, and the groups of their writes (a group's next write waits). */
  #inFlight = 0;
  readonly #groupsInFlight = new Set<string>();
  /** Callers of {@link writeSlot} waiting for an operation in flight to end. */
  #slotWaiters: (() => void)[] = [];
  /** Distinct groups that wrote in the last full window, per ms, and those of the current one. */
  #groupRate = 0;
  #windowStart = 0;
  readonly #windowGroups = new Set<string>();
  /** The timer ending a linger, while one runs. */
  #lingering: ReturnType<typeof setTimeout> | undefined;
  /** Merged operations committed (for tests and metrics). */
  merged = 0;
  /** Failed merged operations whose stale writes were found by reading their checks. */
  triaged = 0;

  constructor(kv: Deno.Kv, limits: Partial<BatchLimits> = {}) {
    this.#kv = kv;
    this.#limits = { ...DEFAULT_LIMITS, ...limits };
  }

  /** Commits `write` (alone or merged with others); resolves like `AtomicOperation.commit()`. */
  commit(write: BatchedWrite): Promise<Deno.KvCommitResult | Deno.KvCommitError> {
    // Arrival times matter only to a linger.
    const at = this.#limits.linger > 0 ? performance.now() : 0;
    if (this.#limits.linger > 0) this.#countGroup(write.group, at);
    return new Promise((resolve, reject) => {
      this.#queue.push({ write, at, resolve, reject });
      this.#start();
    });
  }

  /**
   * `undefined` when a write issued now would start at once; otherwise a promise that resolves when
   * an operation in flight has ended, so that a caller can keep collecting what it will write
   * until then (a room gathers more pushes into its group) instead of queueing a smaller write
   * behind it.
   */
  writeSlot(): Promise<void> | undefined {
    if (this.#inFlight < this.#limits.inFlight) return undefined;
    return new Promise((resolve) => this.#slotWaiters.push(resolve));
  }

  /** Starts operations while fewer than allowed are in flight and writes wait. */
  #start(): void {
    while (this.#inFlight < this.#limits.inFlight && this.#queue.length > 0) {
      if (this.#linger()) return;
      const batch = this.#take();
      if (batch.length === 0) return; // only writes of groups in flight wait
      this.#inFlight++;
      for (const pending of batch) this.#groupsInFlight.add(pending.write.group);
      const run = batch.length === 1 ? this.#commitAlone(batch[0]!) : this.#commitMerged(batch);
      void run.finally(async () => {
        for (const pending of batch) this.#groupsInFlight.delete(pending.write.group);
        // Still counted in flight while the woken callers write: theirs form the next operation.
        await this.#wakeSlotWaiters();
        this.#inFlight--;
        this.#start();
      });
    }
  }

  /** Measures how many distinct groups write per ms (what {@link #linger} decides on). */
  #countGroup(group: string, at: number): void {
    if (at - this.#windowStart >= RATE_WINDOW_MS) {
      this.#groupRate = this.#windowGroups.size / (at - this.#windowStart);
      this.#windowGroups.clear();
      this.#windowStart = at;
    }
    this.#windowGroups.add(group);
  }

  /**
   * Holds the queue back (and arms a timer to release it) while the oldest write has waited less
   * than `linger` and enough distinct groups write that another is likely to join within it: one
   * operation of several rooms' commits costs the local KV's writer about what one commit does
   * (each is one SQLite transaction with its fsync), so a short wait saves most of the rest. One
   * busy room (one group) does not wait, nor does a write after a quiet spell.
   */
  #linger(): boolean {
    if (this.#lingering !== undefined) return true;
    const linger = this.#limits.linger;
    if (linger <= 0 || this.#groupRate * linger < 1 || this.#queue.length >= LINGER_ENOUGH) {
      return false;
    }
    const wait = this.#queue[0]!.at + linger - performance.now();
    if (wait <= 0) return false;
    this.#lingering = setTimeout(() => {
      this.#lingering = undefined;
      this.#start();
    }, wait);
    return true;
  }

  /**
   * Wakes the callers of {@link writeSlot} and lets their writes arrive before the next operation
   * is formed. They write within a few microtasks (planning is synchronous), so this yields
   * microtasks until the queue stops growing, not a macrotask: under load the next macrotask can
   * be tens of milliseconds away, and the file would sit idle meanwhile.
   */
  async #wakeSlotWaiters(): Promise<void> {
    if (this.#slotWaiters.length === 0) return;
    for (const wake of this.#slotWaiters.splice(0)) wake();
    let quiet = 0;
    for (let tick = 0; tick < SLOT_MAX_TICKS && quiet < SLOT_QUIET_TICKS; tick++) {
      const before = this.#queue.length;
      await null;
      quiet = this.#queue.length === before ? quiet + 1 : 0;
    }
  }

  /** The oldest writes that fit one operation, at most one per group, in queue order. */
  #take(): Pending[] {
    const limits = this.#limits;
    const batch: Pending[] = [];
    const rest: Pending[] = [];
    const groups = new Set<string>();
    // Once a write of a group or sequence waits, later ones of it wait too (keeps their order).
    const waiting = new Set<string>();
    const sequences = new Set<string>();
    let checks = 0;
    let mutations = 0;
    let bytes = 0;
    for (const pending of this.#queue) {
      const w = pending.write;
      const sequence = w.sequence === undefined ? undefined : `sequence:${w.sequence}`;
      if (
        this.#groupsInFlight.has(w.group) || waiting.has(w.group) ||
        (sequence !== undefined && (sequences.has(sequence) || waiting.has(sequence)))
      ) {
        rest.push(pending);
        waiting.add(w.group);
        if (sequence !== undefined) waiting.add(sequence);
        continue;
      }
      const fits = batch.length === 0 || (
        batch.length < limits.writes && !groups.has(w.group) &&
        checks + w.checks <= limits.checks && mutations + w.mutations <= limits.mutations &&
        bytes + w.bytes <= limits.bytes
      );
      if (fits) {
        batch.push(pending);
        groups.add(w.group);
        if (sequence !== undefined) sequences.add(sequence);
        checks += w.checks;
        mutations += w.mutations;
        bytes += w.bytes;
      } else {
        rest.push(pending);
        waiting.add(w.group);
        if (sequence !== undefined) waiting.add(sequence);
      }
    }
    this.#queue = rest;
    return batch;
  }

  async #commitAlone(pending: Pending): Promise<void> {
    try {
      const op = this.#kv.atomic();
      pending.write.apply(op);
      pending.resolve(await op.commit());
    } catch (error) {
      pending.reject(error);
    }
  }

  /**
   * Commits `batch` as one operation. If a check failed, the writes whose checks are stale fail and
   * the rest is committed again; otherwise each half is tried the same way, so one lost race among
   * many writes costs a few extra operations rather than one per write.
   */
  async #commitMerged(batch: Pending[]): Promise<void> {
    if (batch.length === 1) return this.#commitAlone(batch[0]!);
    let result: Deno.KvCommitResult | Deno.KvCommitError | undefined;
    try {
      const op = this.#kv.atomic();
      for (const pending of batch) pending.write.apply(op);
      result = await op.commit();
    } catch {
      result = undefined; // retried in parts below, where each write gets its own error
    }
    if (result?.ok) {
      this.merged++;
      for (const pending of batch) pending.resolve(result);
      return;
    }
    if (result) {
      const stale = await this.#stale(batch);
      if (stale && stale.size > 0) {
        this.triaged++;
        for (const pending of stale) pending.resolve(result);
        const rest = batch.filter((pending) => !stale.has(pending));
        if (rest.length > 0) await this.#commitMerged(rest);
        return;
      }
    }
    const half = Math.ceil(batch.length / 2);
    await this.#commitMerged(batch.slice(0, half));
    await this.#commitMerged(batch.slice(half));
  }

  /**
   * The writes of `batch` with a check that no longer holds (read now: a versionstamp that moved
   * on never comes back), or `undefined` if some write does not say what it checks or the read
   * failed.
   */
  async #stale(batch: Pending[]): Promise<Set<Pending> | undefined> {
    const checks: { pending: Pending; check: Deno.AtomicCheck }[] = [];
    for (const pending of batch) {
      const checked = pending.write.checked;
      if (!checked) return undefined;
      for (const check of checked) checks.push({ pending, check });
    }
    const reads: Promise<Deno.KvEntryMaybe<unknown>[]>[] = [];
    for (let i = 0; i < checks.length; i += GET_MANY_LIMIT) {
      reads.push(this.#kv.getMany(checks.slice(i, i + GET_MANY_LIMIT).map((c) => c.check.key)));
    }
    let entries: Deno.KvEntryMaybe<unknown>[];
    try {
      entries = (await Promise.all(reads)).flat();
    } catch {
      return undefined;
    }
    const stale = new Set<Pending>();
    checks.forEach(({ pending, check }, i) => {
      if ((entries[i]?.versionstamp ?? null) !== (check.versionstamp ?? null)) stale.add(pending);
    });
    return stale;
  }
}

/**
 * Group commit for Deno KV: writes issued while another is in flight are merged into one atomic
 * operation, within KV's limits. A local KV file has one writer at a time and each atomic operation
 * is one SQLite transaction, so one operation of 20 small writes costs little more than one write
 * (measured: 0.25 ms for 1 set, 0.6 ms for 20) — this is what lets many rooms, and several Workers
 * sharing the file, commit more than a few thousand times a second. On Deno Deploy it saves round
 * trips in the same way.
 *
 * Writes of the same group (a room's commits: they check the same meta versionstamp) are never
 * merged. If a merged operation fails (one of its checks lost a race, or it threw), its halves are
 * retried apart, down to single writes, so every caller gets the outcome its own operation would
 * have had.
 *
 * @module
 */

/** One write: its checks and mutations, applied to whatever operation carries it. */
export interface BatchedWrite {
  /** Writes of one group are never merged (e.g. `room:<id>` for commits checking its meta). */
  group: string;
  checks: number;
  mutations: number;
  /** Approximate size of keys and values (bytes). */
  bytes: number;
  apply(op: Deno.AtomicOperation): void;
}

/** KV's limits per atomic operation, with a margin. */
export interface BatchLimits {
  checks: number;
  mutations: number;
  bytes: number;
  /** Writes merged at most (keeps the failure fallback short). */
  writes: number;
}

const DEFAULT_LIMITS: BatchLimits = { checks: 90, mutations: 990, bytes: 780_000, writes: 32 };

interface Pending {
  write: BatchedWrite;
  resolve(result: Deno.KvCommitResult | Deno.KvCommitError): void;
  reject(error: unknown): void;
}

/** Merges concurrent atomic writes to one KV handle. */
export class KvBatcher {
  readonly #kv: Deno.Kv;
  readonly #limits: BatchLimits;
  #queue: Pending[] = [];
  #flushing = false;
  /** Merged operations committed (for tests and metrics). */
  merged = 0;

  constructor(kv: Deno.Kv, limits: Partial<BatchLimits> = {}) {
    this.#kv = kv;
    this.#limits = { ...DEFAULT_LIMITS, ...limits };
  }

  /** Commits `write` (alone or merged with others); resolves like `AtomicOperation.commit()`. */
  commit(write: BatchedWrite): Promise<Deno.KvCommitResult | Deno.KvCommitError> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ write, resolve, reject });
      if (!this.#flushing) void this.#flush();
    });
  }

  async #flush(): Promise<void> {
    this.#flushing = true;
    try {
      while (this.#queue.length > 0) {
        const batch = this.#take();
        if (batch.length === 1) await this.#commitAlone(batch[0]!);
        else await this.#commitMerged(batch);
      }
    } finally {
      this.#flushing = false;
    }
  }

  /** The oldest writes that fit one operation, at most one per group, in queue order. */
  #take(): Pending[] {
    const limits = this.#limits;
    const batch: Pending[] = [];
    const rest: Pending[] = [];
    const groups = new Set<string>();
    // Once a write of a group waits, later ones of that group wait too (keeps their order).
    const waiting = new Set<string>();
    let checks = 0;
    let mutations = 0;
    let bytes = 0;
    for (const pending of this.#queue) {
      const w = pending.write;
      const fits = batch.length === 0 || (
        batch.length < limits.writes && !groups.has(w.group) && !waiting.has(w.group) &&
        checks + w.checks <= limits.checks && mutations + w.mutations <= limits.mutations &&
        bytes + w.bytes <= limits.bytes
      );
      if (fits) {
        batch.push(pending);
        groups.add(w.group);
        checks += w.checks;
        mutations += w.mutations;
        bytes += w.bytes;
      } else {
        rest.push(pending);
        waiting.add(w.group);
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
   * Commits `batch` as one operation; if that fails, each half is tried the same way, so one lost
   * race among many writes costs a few extra operations rather than one per write.
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
    const half = Math.ceil(batch.length / 2);
    await this.#commitMerged(batch.slice(0, half));
    await this.#commitMerged(batch.slice(half));
  }
}

/**
 * A write lock shared by the isolate Workers of one process (`--isolates N`) that write to one
 * local KV file.
 *
 * Why: SQLite has one writer at a time. Each Worker opens its own handle on the file, and when two
 * handles write at once the loser either sleeps in Deno's busy loop (blocking its handle's SQLite
 * thread) or fails with "database is locked" and is retried after a jittered pause
 * (locked_retry.ts). Under load that made Workers wait on each other's pauses rather than on the
 * file (measured, 200 rooms × 5 clients on 2 isolates: up to 700 retried operations per isolate in
 * 5 s, their pauses adding up to 30 s). With this lock the Workers' writes queue in order instead,
 * and no handle meets another's transaction.
 *
 * How: a ticket lock in a `SharedArrayBuffer` that the supervisor hands to every Worker at start. A
 * writer takes a ticket (`Atomics.add`) and waits, without blocking its event loop
 * (`Atomics.waitAsync`, in V8 since 8.7 and so in every Deno 2; without it a waiter polls every
 * millisecond), until its turn comes; it starts the turn, writes, and passes the turn on, waking
 * the waiters. Writes of one Worker first queue locally, so a Worker holds at most one ticket and
 * Workers take turns.
 *
 * Two timeouts keep a Worker from holding up the others. A turn that came but was not started
 * within {@link KvWriteLockOptions.handoffMs} (its Worker is busy running other JavaScript and will
 * see the wake-up late) goes to the next waiter, and the late one queues again: a strict queue made
 * the file sit idle for a busy Worker's event loop (measured: 14–28 ms of waiting per operation
 * under many-room load). A turn held for {@link KvWriteLockOptions.stallMs} (its Worker was
 * terminated mid-write) is ended by a waiter. A holder that was merely slow still finishes its
 * write — SQLite serialises it and the locked-file retry catches the overlap. The lock only saves
 * waiting; correctness never depends on it (separate processes on one file are not covered and rely
 * on the retry alone).
 *
 * Only local Workers use it: a single isolate, tests and Deno Deploy (whose KV is not SQLite) never
 * create one and pay nothing.
 *
 * @module
 */

const NEXT = 0; // the next ticket to hand out
const STATE = 1; // (ticket now served << 1) | 1 once its writer has taken the turn
const CELLS = 2;
// Tickets count modulo 2^30, so that a state fits a positive Int32.
const TICKETS = 1 << 30;
const MASK = TICKETS - 1;

/** The shared memory of one lock: create it once per process, hand it to every Worker. */
export function createKvWriteLockBuffer(): SharedArrayBuffer {
  return new SharedArrayBuffer(CELLS * Int32Array.BYTES_PER_ELEMENT);
}

/** Options for {@link KvWriteLock}. */
export interface KvWriteLockOptions {
  /**
   * How long a turn may be held before a waiter ends it (ms): its Worker is gone, or far too slow.
   * Longer than any write plus the event-loop delays of a busy Worker; default 1000.
   */
  stallMs?: number;
  /**
   * How long a waiter whose turn came may take to start it before the next waiter goes first
   * (ms; it then queues again). A Worker busy with other work wakes late; without this the file
   * would sit idle meanwhile. Default 2.
   */
  handoffMs?: number;
}

/** This Worker's side of the shared ticket lock. */
export class KvWriteLock {
  readonly #cells: Int32Array;
  readonly #stallMs: number;
  readonly #handoffMs: number;
  /** The local queue: each writer waits for the one before it, so this Worker holds one ticket. */
  #tail: Promise<unknown> = Promise.resolve();
  /** Turns this Worker ended because their holder stalled (tests, diagnostics). */
  stalled = 0;
  /** Turns this Worker went ahead of because their waiter did not start them in time. */
  passed = 0;

  constructor(buffer: SharedArrayBuffer, options: KvWriteLockOptions = {}) {
    this.#cells = new Int32Array(buffer, 0, CELLS);
    this.#stallMs = options.stallMs ?? 1_000;
    this.#handoffMs = options.handoffMs ?? 2;
  }

  /** Runs `fn` while holding the lock (after this Worker's earlier writers, then in ticket order). */
  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(async () => {
      const ticket = await this.#acquire();
      try {
        return await fn();
      } finally {
        this.#release(ticket);
      }
    });
    this.#tail = result.catch(() => {});
    return result;
  }

  async #acquire(): Promise<number> {
    const cells = this.#cells;
    for (;;) {
      const ticket = Atomics.add(cells, NEXT, 1) & MASK;
      let state = Atomics.load(cells, STATE);
      let since = performance.now();
      for (;;) {
        const serving = state >> 1;
        const taken = (state & 1) === 1;
        if (serving === ticket && !taken) {
          if (Atomics.compareExchange(cells, STATE, state, state | 1) === state) return ticket;
        } else if (((ticket - serving) & MASK) >= TICKETS / 2) {
          break; // our turn came and went while this Worker was busy: queue again
        } else {
          const left = (taken ? this.#stallMs : this.#handoffMs) - (performance.now() - since);
          if (left > 0) {
            await waitWhileEqual(cells, STATE, state, left);
          } else if (
            Atomics.compareExchange(cells, STATE, state, ((serving + 1) & MASK) << 1) === state
          ) {
            if (taken) this.stalled++;
            else this.passed++;
            Atomics.notify(cells, STATE);
          }
        }
        const now = Atomics.load(cells, STATE);
        if (now !== state) {
          state = now;
          since = performance.now();
        }
      }
    }
  }

  #release(ticket: number): void {
    // Only if still ours: a waiter may have ended a stalled turn already.
    const held = (ticket << 1) | 1;
    const next = ((ticket + 1) & MASK) << 1;
    if (Atomics.compareExchange(this.#cells, STATE, held, next) === held) {
      Atomics.notify(this.#cells, STATE);
    }
  }
}

/** Resolves when `cells[index]` may no longer be `value`, or after `timeoutMs`. */
function waitWhileEqual(
  cells: Int32Array,
  index: number,
  value: number,
  timeoutMs: number,
): Promise<void> {
  if (typeof Atomics.waitAsync !== "function") {
    // Runtimes without Atomics.waitAsync poll instead.
    return new Promise((resolve) => setTimeout(resolve, 1));
  }
  const result = Atomics.waitAsync(cells, index, value, timeoutMs);
  if (!result.async) return Promise.resolve();
  // The waitAsync promise alone does not keep the event loop alive: a timer does (and bounds it).
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs + 5);
    result.value.then(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/**
 * `kv` with every write (`atomic().commit()`, `set`, `delete`, `enqueue`) taken under `lock`;
 * reads, watches and the rest go straight to `kv`.
 */
export function withWriteLock(kv: Deno.Kv, lock: KvWriteLock): Deno.Kv {
  const writes = new Map<PropertyKey, unknown>([
    ["atomic", () => {
      const op = kv.atomic();
      const commit = op.commit.bind(op);
      op.commit = () => lock.run(commit);
      return op;
    }],
    ["set", (...args: Parameters<Deno.Kv["set"]>) => lock.run(() => kv.set(...args))],
    ["delete", (...args: Parameters<Deno.Kv["delete"]>) => lock.run(() => kv.delete(...args))],
    ["enqueue", (...args: Parameters<Deno.Kv["enqueue"]>) => lock.run(() => kv.enqueue(...args))],
  ]);
  return withKvMethods(kv, writes);
}

/**
 * `kv` with the methods in `overrides` replaced; the others are called on the handle itself
 * (Deno.Kv's methods use private state). For wrappers that change how some calls are made.
 */
export function withKvMethods(kv: Deno.Kv, overrides: ReadonlyMap<PropertyKey, unknown>): Deno.Kv {
  return new Proxy(kv, {
    get(target, property) {
      if (overrides.has(property)) return overrides.get(property);
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

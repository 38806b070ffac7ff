/**
 * Retries room-store operations that failed because a local KV file was busy. Several Workers of
 * one process (and several processes) open the same SQLite file; SQLite then answers a write that
 * overlaps another connection's transaction with "database is locked" instead of waiting. Such an
 * operation did not happen, so it is safe to run again after a short, jittered pause. On Deno Deploy
 * this never fires.
 *
 * @module
 */
import type { RoomStore } from "./room_store.ts";
import { wrapMethods } from "./store_wrapper.ts";

/** How a busy store is retried. */
export interface LockedRetryOptions {
  /** Attempts in all (first one included). Default 12. */
  attempts?: number;
  /** First pause (ms); doubles per attempt up to {@link maxDelayMs}, each randomised ±50 %. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Injectable for tests. */
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

/** `true` for the error SQLite raises when another connection holds the write lock. */
export function isDatabaseLocked(error: unknown): boolean {
  const message = error instanceof Error ? error.message : String(error);
  return /database is locked|SQLITE_BUSY|database table is locked/i.test(message);
}

/** Runs `operation`, retrying it while it fails with {@link isDatabaseLocked}. */
export async function retryWhileLocked<T>(
  operation: () => Promise<T>,
  options: LockedRetryOptions = {},
): Promise<T> {
  const attempts = options.attempts ?? 12;
  const base = options.baseDelayMs ?? 5;
  const max = options.maxDelayMs ?? 250;
  const sleep = options.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
  const random = options.random ?? Math.random;
  for (let attempt = 1;; attempt++) {
    try {
      return await operation();
    } catch (error) {
      if (attempt >= attempts || !isDatabaseLocked(error)) throw error;
      const delay = Math.min(max, base * 2 ** (attempt - 1));
      await sleep(delay * (0.5 + random()));
    }
  }
}

/** `store` with every operation retried while the file is busy ({@link retryWhileLocked}). */
export function withLockedRetry<S extends RoomStore>(
  store: S,
  options: LockedRetryOptions = {},
): S {
  return wrapMethods(store, ({ method, call }) =>
    // writeSlot writes nothing (and is not async); pipelineSteps may answer `undefined`, and a
    // pipelined commit a busy file refused (a local file behind a remote-KV setup, as in the
    // benchmark) is planned and committed again by the room (group_commit.ts).
    method === "writeSlot" || method === "pipelineSteps"
      ? call()
      : retryWhileLocked(() => call() as Promise<unknown>, options));
}

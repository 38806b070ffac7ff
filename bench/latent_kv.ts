/**
 * A local Deno KV that answers like a remote one (Deno Deploy's KV is a service across the network):
 * every read and every write waits `roundTripMs`, half before the operation reaches the store and
 * half before its answer comes back. Benchmark only (`BENCH_KV_LATENCY_MS`, bench/our_server.ts):
 * it shows whether the engine keeps committing while a commit is in flight.
 *
 * Deno's timers fire at whole milliseconds and about 1.3 ms late (`setTimeout(10)` takes 11.3 ms
 * at the median here), so two plain sleeps of 10 ms would make a 20 ms round trip 22.6 ms. The
 * timer's own lateness, measured once on an idle event loop, is taken off each sleep, and the
 * second half makes up for what the first overshot (measured: a 20 ms round trip adds 20.7 ms
 * at the median on an idle loop); lateness from a busy event loop stays, as a real remote KV has.
 *
 * @module
 */

import { withKvMethods } from "../sync/kv_write_lock.ts";

/** Wraps `kv` so that each read and commit takes at least `roundTripMs` longer. */
export function withLatency(kv: Deno.Kv, roundTripMs: number): Deno.Kv {
  if (roundTripMs <= 0) return kv;
  const timer = new CalibratedTimer();
  const remote = <T>(operation: () => Promise<T>) => async (): Promise<T> => {
    const there = await timer.sleep(roundTripMs / 2);
    const result = await operation();
    await timer.sleep(roundTripMs - there);
    return result;
  };
  const overrides = new Map<PropertyKey, unknown>([
    ["get", (...args: Parameters<Deno.Kv["get"]>) => remote(() => kv.get(...args))()],
    ["getMany", (...args: Parameters<Deno.Kv["getMany"]>) => remote(() => kv.getMany(...args))()],
    ["set", (...args: Parameters<Deno.Kv["set"]>) => remote(() => kv.set(...args))()],
    ["delete", (...args: Parameters<Deno.Kv["delete"]>) => remote(() => kv.delete(...args))()],
    [
      "list",
      (...args: Parameters<Deno.Kv["list"]>) => latentList(kv.list(...args), roundTripMs, timer),
    ],
    ["atomic", () => {
      const op = kv.atomic();
      const commit = op.commit.bind(op);
      op.commit = remote(commit);
      return op;
    }],
  ]);
  return withKvMethods(kv, overrides);
}

/** A listing whose first page costs one round trip (later entries arrive with it). */
function latentList<T>(
  iterator: Deno.KvListIterator<T>,
  roundTripMs: number,
  timer: CalibratedTimer,
): Deno.KvListIterator<T> {
  let first = true;
  const next = iterator.next.bind(iterator);
  iterator.next = async () => {
    if (first) {
      first = false;
      await timer.sleep(roundTripMs);
    }
    return await next();
  };
  return iterator;
}

/** Sleeps that last as long as asked on an idle event loop, or up to a millisecond longer. */
class CalibratedTimer {
  /** How late `setTimeout` fires on an idle loop (ms); 0 until measured. */
  #lateness = 0;

  constructor() {
    this.#calibrate();
  }

  /** Sleeps at least about `ms` (timers fire at whole milliseconds); returns how long it took. */
  async sleep(ms: number): Promise<number> {
    const start = performance.now();
    if (ms > 0) await timeout(Math.max(0, Math.ceil(ms - this.#lateness)));
    return performance.now() - start;
  }

  async #calibrate(): Promise<void> {
    const late: number[] = [];
    for (let i = 0; i < 15; i++) {
      const start = performance.now();
      await timeout(5);
      late.push(performance.now() - start - 5);
    }
    this.#lateness = late.sort((a, b) => a - b)[7] ?? 0;
  }
}

function timeout(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

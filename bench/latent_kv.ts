/**
 * A local Deno KV that answers like a remote one (Deno Deploy's KV is a service across the network):
 * every read and every write waits `roundTripMs`, half before the operation reaches the store and
 * half before its answer comes back. Benchmark only (`BENCH_KV_LATENCY_MS`, bench/our_server.ts):
 * it shows whether the engine keeps committing while a commit is in flight.
 *
 * @module
 */

import { withKvMethods } from "../sync/kv_write_lock.ts";

/** Wraps `kv` so that each read and commit takes at least `roundTripMs` longer. */
export function withLatency(kv: Deno.Kv, roundTripMs: number): Deno.Kv {
  if (roundTripMs <= 0) return kv;
  const there = roundTripMs / 2;
  const back = roundTripMs - there;
  const remote = <T>(operation: () => Promise<T>) => async (): Promise<T> => {
    await sleep(there);
    const result = await operation();
    await sleep(back);
    return result;
  };
  const overrides = new Map<PropertyKey, unknown>([
    ["get", (...args: Parameters<Deno.Kv["get"]>) => remote(() => kv.get(...args))()],
    ["getMany", (...args: Parameters<Deno.Kv["getMany"]>) => remote(() => kv.getMany(...args))()],
    ["set", (...args: Parameters<Deno.Kv["set"]>) => remote(() => kv.set(...args))()],
    ["delete", (...args: Parameters<Deno.Kv["delete"]>) => remote(() => kv.delete(...args))()],
    ["list", (...args: Parameters<Deno.Kv["list"]>) => latentList(kv.list(...args), roundTripMs)],
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
): Deno.KvListIterator<T> {
  let first = true;
  const next = iterator.next.bind(iterator);
  iterator.next = async () => {
    if (first) {
      first = false;
      await sleep(roundTripMs);
    }
    return await next();
  };
  return iterator;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

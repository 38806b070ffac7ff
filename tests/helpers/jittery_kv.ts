/**
 * A local KV that behaves like a remote one whose operations may land out of order: every atomic
 * commit (and read) waits a random time before it reaches the store, so of two commits issued one
 * after the other the second may be applied first — what concurrent requests to Deno Deploy's KV
 * may do. Also counts the commits in flight at once.
 *
 * @module
 */
import { withKvMethods } from "../../sync/kv_write_lock.ts";

/** What a {@link jitteryKv} measured. */
export interface JitterStats {
  /** Most atomic commits in flight at once. */
  maxCommitsInFlight: number;
  /** Commits applied in another order than they were issued in. */
  reordered: number;
}

/** `kv` with each commit and read delayed by `delayMs()` before it reaches the store. */
export function jitteryKv(
  kv: Deno.Kv,
  delayMs: () => number,
): { kv: Deno.Kv; stats: JitterStats } {
  const stats: JitterStats = { maxCommitsInFlight: 0, reordered: 0 };
  let inFlight = 0;
  let issued = 0;
  let lastApplied = 0;
  const later = <T>(operation: () => Promise<T>): Promise<T> =>
    new Promise((resolve) => setTimeout(resolve, delayMs())).then(operation);
  const overrides = new Map<PropertyKey, unknown>([
    ["get", (...args: Parameters<Deno.Kv["get"]>) => later(() => kv.get(...args))],
    ["getMany", (...args: Parameters<Deno.Kv["getMany"]>) => later(() => kv.getMany(...args))],
    ["atomic", () => {
      const op = kv.atomic();
      const commit = op.commit.bind(op);
      op.commit = async () => {
        const order = ++issued;
        stats.maxCommitsInFlight = Math.max(stats.maxCommitsInFlight, ++inFlight);
        try {
          return await later(() => {
            if (order < lastApplied) stats.reordered++;
            lastApplied = Math.max(lastApplied, order);
            return commit();
          });
        } finally {
          inFlight--;
        }
      };
      return op;
    }],
  ]);
  return { kv: withKvMethods(kv, overrides), stats };
}

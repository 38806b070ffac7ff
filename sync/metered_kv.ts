/**
 * A KV handle that counts its operations by kind, for `kv_operations_total`: on Deno Deploy every
 * read and write is billed, and the count per push is what a change to the engine's reads moves.
 * A listing counts once, however many entries it returns. Atomic commits are also timed
 * (`kv_commit_duration_seconds`): every acknowledged push waited for one, so a slow KV (a remote
 * one, or a local file's writer stalled by a checkpoint) shows there before it shows as tail latency.
 *
 * @module
 */
import { withKvMethods } from "./kv_write_lock.ts";

/** Kinds of KV operations counted. */
export const KvOperation = {
  get: "get",
  get_many: "get_many",
  list: "list",
  commit: "commit",
} as const;
/** A kind of KV operation. */
export type KvOperation = typeof KvOperation[keyof typeof KvOperation];

/** The methods of `Deno.Kv` counted as they are called, and what each counts as. */
const COUNTED: ReadonlyMap<keyof Deno.Kv, KvOperation> = new Map([
  ["get", KvOperation.get],
  ["getMany", KvOperation.get_many],
  ["list", KvOperation.list],
  ["set", KvOperation.commit],
  ["delete", KvOperation.commit],
]);

/** Where a metered handle reports: each operation as it starts, each atomic commit as it ends. */
export interface KvMeter {
  started(kind: KvOperation): void;
  /** An atomic commit settled (committed, failed its checks or threw) after `seconds`. */
  committed?(seconds: number): void;
}

/** `kv` with every read, listing and write reported to `meter`. */
export function meteredKv(kv: Deno.Kv, meter: KvMeter): Deno.Kv {
  const overrides = new Map<PropertyKey, unknown>();
  for (const [method, kind] of COUNTED) {
    const call = (kv[method] as (...args: unknown[]) => unknown).bind(kv);
    overrides.set(method, (...args: unknown[]) => {
      meter.started(kind);
      return call(...args);
    });
  }
  const committed = meter.committed?.bind(meter);
  overrides.set("atomic", () => {
    const op = kv.atomic();
    const commit = op.commit.bind(op);
    op.commit = () => {
      meter.started(KvOperation.commit);
      if (!committed) return commit();
      const start = performance.now();
      return commit().finally(() => committed((performance.now() - start) / 1000));
    };
    return op;
  });
  return withKvMethods(kv, overrides);
}

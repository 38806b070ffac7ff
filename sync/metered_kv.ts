/**
 * A KV handle that counts its operations by kind, for `kv_operations_total`: on Deno Deploy every
 * read and write is billed, and the count per push is what a change to the engine's reads moves.
 * A listing counts once, however many entries it returns.
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

/** `kv` with every read, listing and write reported to `count` as it starts. */
export function meteredKv(kv: Deno.Kv, count: (kind: KvOperation) => void): Deno.Kv {
  const overrides = new Map<PropertyKey, unknown>([
    ["get", (...args: Parameters<Deno.Kv["get"]>) => {
      count(KvOperation.get);
      return kv.get(...args);
    }],
    ["getMany", (...args: Parameters<Deno.Kv["getMany"]>) => {
      count(KvOperation.get_many);
      return kv.getMany(...args);
    }],
    ["list", (...args: Parameters<Deno.Kv["list"]>) => {
      count(KvOperation.list);
      return kv.list(...args);
    }],
    ["set", (...args: Parameters<Deno.Kv["set"]>) => {
      count(KvOperation.commit);
      return kv.set(...args);
    }],
    ["delete", (...args: Parameters<Deno.Kv["delete"]>) => {
      count(KvOperation.commit);
      return kv.delete(...args);
    }],
    ["atomic", () => {
      const op = kv.atomic();
      const commit = op.commit.bind(op);
      op.commit = () => {
        count(KvOperation.commit);
        return commit();
      };
      return op;
    }],
  ]);
  return withKvMethods(kv, overrides);
}

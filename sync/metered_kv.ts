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

/** The methods of `Deno.Kv` counted as they are called, and what each counts as. */
const COUNTED: ReadonlyMap<keyof Deno.Kv, KvOperation> = new Map([
  ["get", KvOperation.get],
  ["getMany", KvOperation.get_many],
  ["list", KvOperation.list],
  ["set", KvOperation.commit],
  ["delete", KvOperation.commit],
]);

/** `kv` with every read, listing and write reported to `count` as it starts. */
export function meteredKv(kv: Deno.Kv, count: (kind: KvOperation) => void): Deno.Kv {
  const overrides = new Map<PropertyKey, unknown>();
  for (const [method, kind] of COUNTED) {
    const call = (kv[method] as (...args: unknown[]) => unknown).bind(kv);
    overrides.set(method, (...args: unknown[]) => {
      count(kind);
      return call(...args);
    });
  }
  overrides.set("atomic", () => {
    const op = kv.atomic();
    const commit = op.commit.bind(op);
    op.commit = () => {
      count(KvOperation.commit);
      return commit();
    };
    return op;
  });
  return withKvMethods(kv, overrides);
}

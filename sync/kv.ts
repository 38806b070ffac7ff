/**
 * Opening Deno KV: a local SQLite file under the data directory (created on demand), `:memory:` in
 * tests, or the platform's database on Deno Deploy (no path). The process opens one handle and shares it.
 *
 * @module
 */
import type { Config } from "../config.ts";
import { KvWriteLock, withWriteLock } from "./kv_write_lock.ts";

/** Options for {@link openKv}. */
export interface OpenKvOptions {
  /**
   * The write lock the isolate Workers of this process share (see kv_write_lock.ts): every write on
   * the handle waits its turn. Only for a KV file; ignored for `:memory:` and the platform KV.
   */
  writeLock?: SharedArrayBuffer;
}

/** Opens the KV store the configuration names. */
export async function openKv(
  config: Pick<Config, "kvPath">,
  options: OpenKvOptions = {},
): Promise<Deno.Kv> {
  const path = config.kvPath;
  if (path === undefined) return await Deno.openKv();
  if (path === ":memory:") return await Deno.openKv(path);
  const slash = path.lastIndexOf("/");
  if (slash > 0) await Deno.mkdir(path.slice(0, slash), { recursive: true });
  const kv = await Deno.openKv(path);
  return options.writeLock ? withWriteLock(kv, new KvWriteLock(options.writeLock)) : kv;
}

/** Resolves when KV answers a read within `timeoutMs`. */
export async function pingKv(kv: Deno.Kv, timeoutMs = 2_000): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      kv.get(["health", "ping"]),
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`KV ping timed out after ${timeoutMs} ms`)),
          timeoutMs,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

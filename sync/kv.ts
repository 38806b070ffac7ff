/**
 * Opening Deno KV: a local SQLite file under the data directory (created on demand), `:memory:` in
 * tests, or the platform's database on Deno Deploy (no path). The process opens one handle and shares it.
 *
 * @module
 */
import type { Config } from "../config.ts";

/** Opens the KV store the configuration names. */
export async function openKv(config: Pick<Config, "kvPath">): Promise<Deno.Kv> {
  const path = config.kvPath;
  if (path === undefined) return await Deno.openKv();
  if (path !== ":memory:") {
    const slash = path.lastIndexOf("/");
    if (slash > 0) await Deno.mkdir(path.slice(0, slash), { recursive: true });
  }
  return await Deno.openKv(path);
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

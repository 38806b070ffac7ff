/**
 * Our server, as a benchmark target in its own process: the production entry (`startServer` with
 * `loadConfig`), file-backed Deno KV and embedded PGlite in `DATA_DIR` (a temp dir the benchmark makes
 * and removes), one isolate, logs at `warn`.
 *
 * With `BENCH_KV_LATENCY_MS=20` every KV read and commit takes 20 ms longer (bench/latent_kv.ts).
 *
 * Run: `DATA_DIR=/tmp/x deno run -A --v8-flags=--expose-gc bench/our_server.ts` — prints
 * `{"ready":{"port":…,"controlPort":…}}` once listening.
 *
 * @module
 */
import { loadConfig } from "../config.ts";
import { createLogger } from "../log.ts";
import { startServer } from "../main.ts";
import { withLatency } from "./latent_kv.ts";
import { announce, serveControl } from "./server_control.ts";

if (import.meta.main) {
  const env = Deno.env.toObject();
  // `BENCH_KV_LATENCY_MS`: every KV read and commit takes this much longer, as Deno Deploy's
  // remote KV does; the server then runs as it does there (KV_REMOTE).
  const kvLatencyMs = Number(env.BENCH_KV_LATENCY_MS ?? "0");
  // Only what the benchmark chooses: a stray DATABASE_URL / KV_PATH from the shell must not point the
  // benchmark at shared storage.
  const config = loadConfig({
    DATA_DIR: env.DATA_DIR,
    // Diagnostics only (`--servers=ours-memkv`): the same engine on an in-memory KV, to tell the
    // cost of durable commits from the engine's own.
    KV_PATH: env.BENCH_KV_PATH,
    // `BENCH_DATABASE_URL`: run on that Postgres database (as in production) instead of embedded
    // PGlite, which shares the serving thread.
    DATABASE_URL: env.BENCH_DATABASE_URL,
    PORT: env.PORT ?? "0",
    HOST: "127.0.0.1",
    LOG_LEVEL: env.LOG_LEVEL ?? "warn",
    ISOLATES: "1",
    // bench/web_bench.ts: the page build to serve.
    WEB_DIR: env.BENCH_WEB_DIR,
    KV_REMOTE: env.KV_REMOTE ?? (kvLatencyMs > 0 ? "true" : undefined),
    KV_COMMITS_IN_FLIGHT: env.KV_COMMITS_IN_FLIGHT,
    KV_COMMIT_LINGER_MS: env.KV_COMMIT_LINGER_MS,
    // What history versions cost: e.g. HISTORY_INTERVAL_MS=3600000 writes none while measured.
    HISTORY_INTERVAL_MS: env.HISTORY_INTERVAL_MS,
    // The reference enforces no room size, and a saturation ramp that reaches ~20,000 pushes/s
    // creates over 25 MB (the default limit) of shapes in its one room: ours then refused those
    // pushes with ROOM_TOO_LARGE, as it should, and the run counted the closes as errors.
    MAX_ROOM_BYTES: env.MAX_ROOM_BYTES ?? String(1024 ** 3),
  });
  const log = createLogger(config.logLevel);
  const server = await startServer(config, log, {
    ...(kvLatencyMs > 0 ? { wrapKv: (kv: Deno.Kv) => withLatency(kv, kvLatencyMs) } : {}),
  });
  const controlPort = await serveControl();
  Deno.addSignalListener("SIGTERM", async () => {
    await server.shutdown("benchmark done");
    // Exit normally so `--cpu-prof` writes its profile.
    Deno.exit(0);
  });
  announce({ port: server.port, controlPort });
}

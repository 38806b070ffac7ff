/**
 * `deno task zero`: Rocicorp's zero-cache for local development, next to `deno task dev`. It
 * replicates the server's Postgres (`DATABASE_URL`, which needs `wal_level=logical`) into a replica
 * file under `DATA_DIR`, serves Zero clients on `ZERO_PORT` (4848), and sends their mutations and
 * queries to this server's `/app/zero/push` and `/app/zero/query`.
 *
 * zero-cache runs on Node 22, which comes from npm with its packages: both are installed by Deno
 * into zero_cache/npm/node_modules from the committed zero_cache/npm/deno.lock on first use (its
 * Node is the Linux x64 build; elsewhere a `node` ≥ 22 on PATH is used). The zero-cache version is the one
 * the server's `@rocicorp/zero` has: clients, server and cache must match.
 *
 * @module
 */
import postgres from "postgres";
import { type Config, ConfigError, EXIT_STARTUP_PROBLEM, loadConfig } from "../config.ts";
import { describeDatabaseUrl, explainConnectError } from "../db/connect_errors.ts";
import { ensurePackagesInstalled } from "../web/deno_install.ts";

/** zero-cache's npm project (package.json, deno.lock, node_modules). */
export const ZERO_CACHE_DIR: string = decodeURIComponent(
  new URL("./npm/", import.meta.url).pathname,
);

/** How zero-cache is started. */
export interface ZeroCacheOptions {
  /** The Postgres it replicates (with `wal_level=logical`). */
  upstreamDb: string;
  /** The replica file (SQLite) zero-cache keeps. */
  replicaFile: string;
  /** This server's origin, e.g. `http://127.0.0.1:8000` (its push and query endpoints). */
  serverUrl: string;
  /** The port clients connect to (zero-cache also uses the next one). */
  port: number;
  /** Production mode needs an admin password; without one zero-cache runs in development mode. */
  adminPassword?: string;
  /** Where its output goes (tests collect it). */
  output?: "inherit" | "piped";
  /** More environment for zero-cache (e.g. `ZERO_LOG_LEVEL`). */
  env?: Record<string, string>;
}

/** A running zero-cache. */
export interface RunningZeroCache extends AsyncDisposable {
  /** Where clients connect (`cacheURL`). */
  url: string;
  child: Deno.ChildProcess;
  /** SIGTERM, then waits for the exit. */
  stop(): Promise<void>;
  /** The last 20,000 characters zero-cache printed (with `output: "piped"`; else empty). */
  recentOutput(): string;
}

/** Why zero-cache cannot start here, said so a person can fix it. */
export class ZeroCacheProblem extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ZeroCacheProblem";
  }
}

/** Installs zero-cache and its Node unless they match package.json and deno.lock. */
export function ensureZeroCacheInstalled(): Promise<void> {
  return ensurePackagesInstalled(ZERO_CACHE_DIR, {
    timeoutMs: 600_000,
    onInstall: () =>
      console.error("zero: installing zero-cache and Node 22 from npm (first run only)…"),
  });
}

/** The Node that runs zero-cache: the one from npm (Linux x64), else `node` ≥ 22 on PATH. */
export async function zeroCacheNode(): Promise<string> {
  const bundled = `${ZERO_CACHE_DIR}node_modules/.bin/node`;
  const candidates = Deno.build.os === "linux" && Deno.build.arch === "x86_64"
    ? [bundled, "node"]
    : ["node"];
  for (const node of candidates) {
    try {
      const output = await new Deno.Command(node, { args: ["--version"], stdout: "piped" })
        .output();
      const major = Number(
        new TextDecoder().decode(output.stdout).trim().replace(/^v/, "")
          .split(".")[0],
      );
      if (output.success && major >= 22) return node;
    } catch {
      // Not there.
    }
  }
  throw new ZeroCacheProblem(
    "zero-cache needs Node 22 or later: none came with its npm packages for this platform " +
      `(${Deno.build.os}-${Deno.build.arch}) and none is on PATH. Install Node 22 and try again.`,
  );
}

/**
 * Checks that `url`'s server replicates logically (zero-cache needs it); throws a
 * {@link ZeroCacheProblem} saying how to turn it on.
 */
export async function checkWalLevel(url: string): Promise<void> {
  const sql = postgres(url, { max: 1, connect_timeout: 10, onnotice: () => {} });
  try {
    const [row] = await sql<{ wal_level: string }[]>`SHOW wal_level`.catch((error) => {
      throw new ZeroCacheProblem(explainConnectError(error, url) ?? String(error));
    });
    if (row?.wal_level !== "logical") {
      throw new ZeroCacheProblem(
        `zero-cache needs logical replication, but wal_level is '${row?.wal_level}' on the ` +
          `database at ${describeDatabaseUrl(url)}. Turn it on as a superuser with ` +
          "`ALTER SYSTEM SET wal_level = logical;` and restart Postgres (a managed Postgres: " +
          "enable logical replication in its settings; Docker: `postgres -c wal_level=logical`).",
      );
    }
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** Starts zero-cache and waits until it answers (throws with its output when it does not). */
export async function startZeroCache(options: ZeroCacheOptions): Promise<RunningZeroCache> {
  await ensureZeroCacheInstalled();
  const node = await zeroCacheNode();
  const child = new Deno.Command(node, {
    args: [`${ZERO_CACHE_DIR}node_modules/@rocicorp/zero/out/zero/src/cli.js`],
    cwd: ZERO_CACHE_DIR,
    env: {
      ZERO_UPSTREAM_DB: options.upstreamDb,
      ZERO_REPLICA_FILE: options.replicaFile,
      ZERO_APP_PUBLICATIONS: "zero_data",
      ZERO_MUTATE_URL: `${options.serverUrl}/app/zero/push`,
      ZERO_QUERY_URL: `${options.serverUrl}/app/zero/query`,
      ZERO_PORT: String(options.port),
      ZERO_NUM_SYNC_WORKERS: "1",
      DO_NOT_TRACK: "1",
      NODE_OPTIONS: `--import=${new URL("./npm/bind_host.mjs", import.meta.url).href}`,
      ...(options.adminPassword
        ? { ZERO_ADMIN_PASSWORD: options.adminPassword }
        : { NODE_ENV: "development" }),
      ...options.env,
    },
    stdin: "null",
    stdout: options.output ?? "inherit",
    stderr: options.output ?? "inherit",
  }).spawn();
  let output = "";
  if (options.output === "piped") {
    for (const stream of [child.stdout, child.stderr]) {
      (async () => {
        for await (const text of stream.pipeThrough(new TextDecoderStream())) {
          output = (output + text).slice(-20_000);
        }
      })();
    }
  }
  let exited = false;
  child.status.then(() => exited = true);
  const url = `http://127.0.0.1:${options.port}`;
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // Gone already.
    }
    await child.status;
  };
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (exited) throw new ZeroCacheProblem(`zero-cache exited at start:\n${output}`);
    if (Date.now() > deadline) {
      await stop();
      throw new ZeroCacheProblem(`zero-cache did not answer within 120 s:\n${output}`);
    }
    try {
      const response = await fetch(`${url}/`);
      await response.body?.cancel();
      if (response.ok) break;
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return { url, child, stop, recentOutput: () => output, [Symbol.asyncDispose]: stop };
}

/** The origin of this server as configured (a wildcard host is reached on loopback). */
function serverOrigin(config: Config): string {
  const host = ["0.0.0.0", "::", "[::]"].includes(config.http.host)
    ? "127.0.0.1"
    : config.http.host;
  return `http://${host.includes(":") ? `[${host}]` : host}:${config.http.port}`;
}

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig(Deno.env.toObject(), { dev: true });
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      Deno.exit(EXIT_STARTUP_PROBLEM);
    }
    throw error;
  }
  const fail = (message: string) => {
    console.error(`zero: ${message}`);
    Deno.exit(EXIT_STARTUP_PROBLEM);
  };
  if (config.database.kind !== "postgres") {
    return fail(
      "zero-cache replicates a Postgres server: set DATABASE_URL (the same one the server uses). " +
        "The embedded database (PGlite) cannot serve it.",
    );
  }
  const port = Number(Deno.env.get("ZERO_PORT") ?? 4848);
  const serverUrl = serverOrigin(config);
  try {
    await checkWalLevel(config.database.url);
    const running = await startZeroCache({
      upstreamDb: config.database.url,
      replicaFile: `${config.dataDir}/zero-replica.db`,
      serverUrl,
      port,
      ...(Deno.env.get("ZERO_ADMIN_PASSWORD")
        ? { adminPassword: Deno.env.get("ZERO_ADMIN_PASSWORD")! }
        : {}),
    });
    console.error(
      `zero: zero-cache is ready at ${running.url}; it sends mutations and queries to ` +
        `${serverUrl}/app/zero/…\nzero: start the server with ZERO_CACHE_URL=${running.url} ` +
        "so that its web app syncs files through Zero",
    );
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      Deno.addSignalListener(signal, () => running.stop().then(() => Deno.exit(0)));
    }
    const status = await running.child.status;
    Deno.exit(status.code);
  } catch (error) {
    if (error instanceof ZeroCacheProblem) return fail(error.message);
    throw error;
  }
}

if (import.meta.main) await main();

/**
 * Entry point: read the configuration, open KV and the database, apply migrations, build the app and
 * serve it. On SIGINT/SIGTERM: stop accepting, let engines flush, close sockets with a retryable code,
 * then `server.shutdown()` and close storage.
 *
 * @module
 */
import { type Config, ConfigError, EXIT_STARTUP_PROBLEM, loadConfig } from "./config.ts";
import { explainConnectError } from "./db/connect_errors.ts";
import type { Database } from "./db/database.ts";
import { migrate, readMigrations } from "./db/migrate.ts";
import { openDatabase } from "./db/open.ts";
import { createLogger, type Logger } from "./log.ts";
import { createApp } from "./routes/app.ts";
import { Lifecycle } from "./routes/lifecycle.ts";
import { openKv } from "./sync/kv.ts";
import { openBus } from "./sync/bus/open.ts";
import { startIsolates } from "./isolates.ts";

/** What kind of start-up problem a {@link StartupError} is. */
export type StartupProblem = "port_in_use" | "database_unreachable";

/** A start-up problem with a message that says what to do; nothing was left running. */
export class StartupError extends Error {
  readonly problem: StartupProblem;
  constructor(problem: StartupProblem, message: string) {
    super(message);
    this.name = "StartupError";
    this.problem = problem;
  }
}

/** A running server. */
export interface RunningServer {
  /** The port actually bound (useful with `PORT=0`). */
  port: number;
  /** With {@link ServeOptions.directPort}: this isolate's own port (tests pick an isolate by it). */
  directPort?: number;
  /** Drains and stops the server, then closes storage. Safe to call twice. */
  shutdown(reason: string): Promise<void>;
  /** Resolves once the server has fully stopped. */
  finished: Promise<void>;
}

/** How {@link startServer} listens, beyond the configuration. */
export interface ServeOptions {
  /** Share the port with other isolates (SO_REUSEPORT: the kernel spreads connections). */
  reusePort?: boolean;
  /** Also listen on a free port of this isolate's own. */
  directPort?: boolean;
  /** The KV write lock shared by the isolates of this process (see sync/kv_write_lock.ts). */
  kvWriteLock?: SharedArrayBuffer;
  /** Ports to the other isolate Workers of this process: the bus goes through them (port_bus.ts). */
  busPorts?: MessagePort[];
  /** Wraps the opened KV handle (benchmarks: a remote KV's latency, bench/latent_kv.ts). */
  wrapKv?: (kv: Deno.Kv) => Deno.Kv;
}

/** Opens storage, migrates, and serves the app according to `config`. */
export async function startServer(
  config: Config,
  log: Logger,
  options: ServeOptions = {},
): Promise<RunningServer> {
  // Before the slow parts (database, migrations): a port in use is the commonest start-up problem.
  if (!options.reusePort) ensurePortFree(config);
  const opened = await openKv(
    config,
    options.kvWriteLock ? { writeLock: options.kvWriteLock } : {},
  );
  const kv = options.wrapKv ? options.wrapKv(opened) : opened;
  let database: Database | undefined;
  try {
    database = await openDatabase(config, log);
    await ensureReachable(database, config);
    if (config.migrateOnStart) {
      const applied = await migrate(database, await readMigrations(), {
        onMigration: (m) => log.info("applying migration", { migration: m.name }),
      });
      if (applied.length > 0) log.info("migrations applied", { count: applied.length });
    }
  } catch (error) {
    await database?.close();
    kv.close();
    throw error;
  }
  const db = database;
  const bus = await openBus(config, db, log, options.busPorts);
  const lifecycle = new Lifecycle();
  const app = createApp({ config, kv, database: db, log, lifecycle, ...(bus ? { bus } : {}) });

  let resolveListening: (port: number) => void;
  const listening = new Promise<number>((resolve) => (resolveListening = resolve));
  let server: Deno.HttpServer;
  try {
    server = Deno.serve({
      port: config.http.port,
      hostname: config.http.host,
      reusePort: options.reusePort ?? false,
      onListen: ({ port }) => resolveListening(port),
    }, app.fetch);
  } catch (error) {
    await lifecycle.drain();
    await bus?.close().catch(() => {});
    await db.close().catch(() => {});
    kv.close();
    if (error instanceof Deno.errors.AddrInUse) throw portInUse(config);
    throw error;
  }
  const port = await listening;
  const direct = options.directPort
    ? Deno.serve({ port: 0, hostname: config.http.host, onListen: () => {} }, app.fetch)
    : undefined;
  const url = `http://${
    config.http.host.includes(":") ? `[${config.http.host}]` : config.http.host
  }:${port}/`;
  log.info("listening", {
    url,
    port,
    host: config.http.host,
    database: db.kind,
    kv: config.kvPath ?? "deploy",
    bus: config.bus,
    dev: config.dev,
  });
  if (config.dev) log.info(`ready: open ${url}`);

  let stopping: Promise<void> | undefined;
  const shutdown = (reason: string) => {
    stopping ??= (async () => {
      log.info("shutting down", { reason, openSockets: lifecycle.openSockets });
      await lifecycle.drain((error) => log.error("drain hook failed", { error }));
      const graceful = Promise.all([server.shutdown(), direct?.shutdown()]);
      const timedOut = await Promise.race([
        graceful.then(() => false),
        new Promise<boolean>((resolve) =>
          setTimeout(() => resolve(true), config.http.shutdownGraceMs)
        ),
      ]);
      if (timedOut) log.warn("connections still open after grace period", { reason });
      await bus?.close().catch((error) => log.error("bus close failed", { error }));
      await db.close().catch((error) => log.error("database close failed", { error }));
      kv.close();
      log.info("shutdown complete", { reason });
    })();
    return stopping;
  };
  return {
    port,
    ...(direct ? { directPort: direct.addr.port } : {}),
    shutdown,
    finished: Promise.all([server.finished, direct?.finished]).then(() => {}),
  };
}

function portInUse(config: Config): StartupError {
  return new StartupError(
    "port_in_use",
    `Port ${config.http.port} on ${config.http.host} is already in use (another server, or ` +
      "another `deno task dev`?): stop it, or pick another port with PORT=…",
  );
}

/** Fails fast when the configured port is taken (the real bind later still reports a race). */
function ensurePortFree(config: Config): void {
  if (config.http.port === 0) return;
  try {
    Deno.listen({ port: config.http.port, hostname: config.http.host }).close();
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) throw portInUse(config);
    throw error;
  }
}

/** Fails start-up with a sentence to act on when the Postgres server cannot be reached. */
async function ensureReachable(database: Database, config: Config): Promise<void> {
  if (config.database.kind !== "postgres") return;
  try {
    await database.ping(10_000);
  } catch (error) {
    const explained = explainConnectError(error, config.database.url);
    if (explained) throw new StartupError("database_unreachable", explained);
    throw error;
  }
}

function addSignalListener(signal: Deno.Signal, handler: () => void): void {
  try {
    Deno.addSignalListener(signal, handler);
  } catch {
    // Not every platform lets a program listen for every signal (e.g. SIGTERM on Windows).
  }
}

/** Reads `--isolates N` / `--isolates=N`; `undefined` when absent. Exits on a malformed value. */
function isolatesArg(args: string[]): number | undefined {
  const index = args.findIndex((arg) => arg === "--isolates" || arg.startsWith("--isolates="));
  if (index < 0) return undefined;
  const arg = args[index]!;
  const raw = arg.includes("=") ? arg.slice(arg.indexOf("=") + 1) : args[index + 1];
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1 || value > 64) {
    console.error(`--isolates: expected a whole number from 1 to 64, got ${JSON.stringify(raw)}`);
    Deno.exit(EXIT_STARTUP_PROBLEM);
  }
  return value;
}

async function main(): Promise<void> {
  const dev = Deno.args.includes("--dev");
  let config: Config;
  try {
    const isolates = isolatesArg(Deno.args);
    config = loadConfig(Deno.env.toObject(), { dev, ...(isolates ? { isolates } : {}) });
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      Deno.exit(EXIT_STARTUP_PROBLEM);
    }
    throw error;
  }
  const log = createLogger(config.logLevel, undefined, { format: config.logFormat });
  let server: { shutdown(reason: string): Promise<void> };
  try {
    server = config.isolates > 1
      ? await startIsolates(config, log)
      : await startServer(config, log);
  } catch (error) {
    if (error instanceof StartupError) {
      log.error(error.message, { problem: error.problem });
      Deno.exit(EXIT_STARTUP_PROBLEM);
    }
    log.error("start-up failed", { error });
    Deno.exit(1);
  }
  const onSignal = (signal: Deno.Signal) => async () => {
    await server.shutdown(signal);
    Deno.exit(0);
  };
  addSignalListener("SIGINT", onSignal("SIGINT"));
  addSignalListener("SIGTERM", onSignal("SIGTERM"));
}

if (import.meta.main) await main();

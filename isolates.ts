/**
 * `deno task dev --isolates N`: N Web Workers, each with its own server, KV handle and bus endpoint,
 * sharing the KV file, the database and the port (SO_REUSEPORT) — the shape of production, where the
 * sessions of one room land on different isolates. Each worker also gets a port of its own so that
 * tests (and curious developers) can pick an isolate.
 *
 * Their writes to the KV file take turns through one shared lock (sync/kv_write_lock.ts) rather than
 * colliding on SQLite's write lock.
 *
 * PGlite is single-process: with no `DATABASE_URL` the supervisor opens it, applies the migrations and
 * serves it to the workers over the Postgres wire protocol (pglite-socket) on a loopback port.
 *
 * @module
 */
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";
import type { Config } from "./config.ts";
import { migrate, readMigrations } from "./db/migrate.ts";
import { openDatabase } from "./db/open.ts";
import { openPGlite } from "./db/pglite.ts";
import type { Logger } from "./log.ts";
import { createKvWriteLockBuffer } from "./sync/kv_write_lock.ts";
import { linkWorkers } from "./sync/bus/port_bus.ts";

/** Supervisor → worker. */
export type ToIsolate =
  | {
    type: "start";
    config: Config;
    isolate: number;
    reusePort: boolean;
    /** The KV write lock all isolates share (a KV file only; see sync/kv_write_lock.ts). */
    kvWriteLock?: SharedArrayBuffer;
    /** Its ends of the channels linking it to every other isolate (sync/bus/port_bus.ts). */
    busPorts?: MessagePort[];
  }
  | { type: "shutdown"; reason: string };

/** Worker → supervisor. */
export type FromIsolate =
  | { type: "listening"; isolate: number; port: number; directPort: number }
  | { type: "failed"; isolate: number; error: string }
  | { type: "stopped"; isolate: number };

/** The running isolates. */
export interface RunningIsolates {
  /** The shared port. */
  port: number;
  /** Each isolate's own port, by index. */
  directPorts: number[];
  shutdown(reason: string): Promise<void>;
  /**
   * Drains and stops one isolate as a SIGINT would (sockets closed with 1012), leaving the others
   * running: an eviction.
   */
  stopIsolate(index: number, reason: string): Promise<void>;
  /**
   * Terminates one isolate's Worker at once, without draining: its sockets drop, its KV writes in
   * flight are lost, its session entries stay until they expire — a crash (fault tests).
   */
  killIsolate(index: number): void;
}

const STOP_TIMEOUT_MS = 10_000;

/** Opens the shared database (or serves PGlite), then starts `config.isolates` workers. */
export async function startIsolates(config: Config, log: Logger): Promise<RunningIsolates> {
  const { workerConfig, closeDatabase } = await prepareDatabase(config, log);
  const workers: Worker[] = [];
  const directPorts: number[] = [];
  let port = config.http.port;
  // The isolates' writes to one KV file take turns instead of colliding on SQLite's write lock.
  const kvPath = workerConfig.kvPath;
  const kvWriteLock = kvPath !== undefined && kvPath !== ":memory:"
    ? createKvWriteLockBuffer()
    : undefined;
  // The bus between the isolates: a MessagePort per pair (cheaper than a BroadcastChannel here).
  const busPorts = config.isolates > 1 ? linkWorkers(config.isolates) : [];
  try {
    for (let isolate = 0; isolate < config.isolates; isolate++) {
      const worker = new Worker(new URL("./isolate_worker.ts", import.meta.url), {
        type: "module",
        name: `isolate-${isolate}`,
      });
      workers.push(worker);
      const started = await request(worker, {
        type: "start",
        isolate,
        reusePort: true,
        ...(kvWriteLock ? { kvWriteLock } : {}),
        ...(busPorts[isolate] ? { busPorts: busPorts[isolate] } : {}),
        // The first isolate may pick a free port (PORT=0); the others join it.
        config: { ...workerConfig, http: { ...workerConfig.http, port } },
      }, "listening");
      port = started.port;
      directPorts.push(started.directPort);
    }
  } catch (error) {
    for (const worker of workers) worker.terminate();
    for (const ports of busPorts) for (const port of ports) port.close();
    await closeDatabase();
    throw error;
  }
  log.info("isolates listening", { port, isolates: config.isolates, directPorts });

  let stopping: Promise<void> | undefined;
  const gone = new Set<number>();
  return {
    port,
    directPorts,
    async stopIsolate(index, reason) {
      const worker = workers[index];
      if (!worker || gone.has(index)) return;
      gone.add(index);
      log.info("stopping isolate", { isolate: index, reason });
      await request(worker, { type: "shutdown", reason }, "stopped", STOP_TIMEOUT_MS)
        .catch((error) => log.warn("isolate did not stop cleanly", { isolate: index, error }));
      worker.terminate();
    },
    killIsolate(index) {
      const worker = workers[index];
      if (!worker || gone.has(index)) return;
      gone.add(index);
      log.warn("killing isolate", { isolate: index });
      worker.terminate();
    },
    shutdown(reason) {
      stopping ??= (async () => {
        log.info("stopping isolates", { reason });
        await Promise.allSettled(
          workers.filter((_, i) => !gone.has(i)).map((worker) =>
            request(worker, { type: "shutdown", reason }, "stopped", STOP_TIMEOUT_MS)
          ),
        );
        for (const worker of workers) worker.terminate();
        await closeDatabase();
        log.info("shutdown complete", { reason });
      })();
      return stopping;
    },
  };
}

/** Workers reach the database through a URL; PGlite is served to them by this thread. */
async function prepareDatabase(
  config: Config,
  log: Logger,
): Promise<{ workerConfig: Config; closeDatabase: () => Promise<void> }> {
  if (config.database.kind === "postgres") {
    if (config.migrateOnStart) {
      const database = await openDatabase(config);
      try {
        await migrate(database, await readMigrations());
      } finally {
        await database.close();
      }
    }
    return { workerConfig: { ...config, migrateOnStart: false }, closeDatabase: async () => {} };
  }
  const database = await openPGlite({ dataDir: config.database.dataDir });
  if (config.migrateOnStart) await migrate(database, await readMigrations());
  const server = new PGLiteSocketServer(
    {
      db: database.pglite,
      host: "127.0.0.1",
      port: 0,
      maxConnections: 1_000,
    } as ConstructorParameters<typeof PGLiteSocketServer>[0],
  );
  await server.start();
  const address = (server as unknown as { server: { address(): { port: number } } }).server
    .address();
  log.info("serving PGlite to the isolates", { port: address.port });
  return {
    workerConfig: {
      ...config,
      migrateOnStart: false,
      // LISTEN/NOTIFY does not cross pglite-socket: the isolates of one process use their ports.
      bus: config.bus === "none" ? "none" : "broadcast",
      database: {
        kind: "postgres",
        url: `postgres://postgres@127.0.0.1:${address.port}/postgres`,
        poolSize: 4,
      },
    },
    closeDatabase: async () => {
      await server.stop();
      await database.close();
    },
  };
}

/** Posts `message` and waits for the reply of type `expect` (or a failure). */
function request<T extends FromIsolate["type"]>(
  worker: Worker,
  message: ToIsolate,
  expect: T,
  timeoutMs = 60_000,
): Promise<Extract<FromIsolate, { type: T }>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`isolate did not answer ${message.type} within ${timeoutMs} ms`));
    }, timeoutMs);
    const onMessage = (event: MessageEvent<FromIsolate>) => {
      if (event.data.type === expect) {
        cleanup();
        resolve(event.data as Extract<FromIsolate, { type: T }>);
      } else if (event.data.type === "failed") {
        cleanup();
        reject(new Error(`isolate ${event.data.isolate} failed: ${event.data.error}`));
      }
    };
    const onError = (event: ErrorEvent) => {
      event.preventDefault();
      cleanup();
      reject(new Error(`isolate crashed: ${event.message}`));
    };
    const cleanup = () => {
      clearTimeout(timer);
      worker.removeEventListener("message", onMessage);
      worker.removeEventListener("error", onError);
    };
    worker.addEventListener("message", onMessage);
    worker.addEventListener("error", onError);
    // A start message's bus ports move to the worker (a MessagePort is transferred, not copied).
    worker.postMessage(message, message.type === "start" ? message.busPorts ?? [] : []);
  });
}

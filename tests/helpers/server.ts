/**
 * Starts the real app on a free loopback port with an in-memory KV and a fresh test database.
 *
 * @module
 */
import { type Config, testConfig } from "../../config.ts";
import type { Database } from "../../db/database.ts";
import { createLogger, type Logger, silentLogger } from "../../log.ts";
import { createApp } from "../../routes/app.ts";
import type { AppDeps } from "../../routes/deps.ts";
import { Lifecycle } from "../../routes/lifecycle.ts";
import { openTestDatabase } from "./db.ts";
// The app loads the tldraw packages, whose start-up timer would otherwise be blamed on the first test.
import "./tldraw_settle.ts";

/** A running test server. Dispose it (or call `close`) at the end of the test. */
export interface TestServer extends AsyncDisposable {
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** `ws://127.0.0.1:<port>` */
  wsUrl: string;
  port: number;
  deps: AppDeps;
  close(): Promise<void>;
}

/** Options for {@link startTestServer}. */
export interface TestServerOptions {
  /** Overrides on top of {@link testConfig}. */
  config?: Partial<Config>;
  /** Use this database instead of a fresh one (it is then not closed by the server). */
  database?: Database;
  /** Use this KV instead of a fresh in-memory one (it is then not closed by the server). */
  kv?: Deno.Kv;
  /** This isolate's bus endpoint (tests of several in-process isolates share a `MemoryBusHub`). */
  bus?: AppDeps["bus"];
  /** Log to stderr (`LOG_LEVEL` env, default silent). */
  log?: Logger;
  /** Tunables and test hooks of the user-data surface. */
  userData?: AppDeps["userData"];
  /** Tunables of the file-room route. */
  fileRooms?: AppDeps["fileRooms"];
  /** Test seams of history, assets, hard deletes and unfurling. */
  content?: AppDeps["content"];
  /** Queue limits of the debug tail. */
  debugTail?: AppDeps["debugTail"];
}

/** Starts the app on `127.0.0.1:0`. */
export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const config = testConfig(options.config);
  const kv = options.kv ?? await Deno.openKv(":memory:");
  const database = options.database ?? await openTestDatabase();
  const envLevel = Deno.env.get("TEST_LOG_LEVEL");
  const log = options.log ??
    (envLevel ? createLogger(envLevel as Config["logLevel"]) : silentLogger);
  const lifecycle = new Lifecycle();
  const deps: AppDeps = {
    config,
    kv,
    database,
    log,
    lifecycle,
    ...(options.bus ? { bus: options.bus } : {}),
    ...(options.userData ? { userData: options.userData } : {}),
    ...(options.fileRooms ? { fileRooms: options.fileRooms } : {}),
    ...(options.content ? { content: options.content } : {}),
    ...(options.debugTail ? { debugTail: options.debugTail } : {}),
  };
  const app = createApp(deps);
  let resolvePort: (port: number) => void;
  const listening = new Promise<number>((resolve) => (resolvePort = resolve));
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen: ({ port }) => resolvePort(port) },
    app.fetch,
  );
  const port = await listening;
  let closed: Promise<void> | undefined;
  const close = () =>
    closed ??= (async () => {
      await lifecycle.drain();
      await server.shutdown();
      if (!options.database) await database.close();
      if (!options.kv) kv.close();
    })();
  return {
    url: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}`,
    port,
    deps,
    close,
    [Symbol.asyncDispose]: close,
  };
}

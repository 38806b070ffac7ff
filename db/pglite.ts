/**
 * Embedded Postgres (PGlite, WebAssembly) for running without a database server.
 * Data lives in a local directory (or in memory); one process owns it.
 *
 * @module
 */
import { PGlite } from "@electric-sql/pglite";
import { Kysely, PGliteDialect } from "kysely";
import {
  assertChannelName,
  assertNotifyPayload,
  countingDialect,
  type Database,
  InFlight,
  type Notifier,
  type SqlSession,
  withTimeout,
} from "./database.ts";
import type { DB } from "./schema.ts";

/** Options for {@link openPGlite}. */
export interface PGliteOptions {
  /** A directory path, or `memory://` (the default) for an in-memory database. */
  dataDir?: string;
  /** A `dumpDataDir()` archive to start from (much faster than initialising a fresh cluster). */
  loadDataDir?: Blob;
}

/** Opens (creating if needed) an embedded PGlite database. */
export async function openPGlite(
  options: PGliteOptions = {},
): Promise<Database & { pglite: PGlite }> {
  const dataDir = options.dataDir ?? "memory://";
  if (!dataDir.startsWith("memory://")) await Deno.mkdir(dataDir, { recursive: true });
  // An archive is unpacked, not initialised: no initdb, nothing to keep off this thread.
  if (!options.loadDataDir && await needsInit(dataDir)) await initInWorker(dataDir);
  const pglite = await PGlite.create({
    dataDir,
    ...(options.loadDataDir ? { loadDataDir: options.loadDataDir } : {}),
  });
  return wrapPGlite(pglite);
}

/**
 * Whether `dataDir` is a directory without a cluster yet (no `PG_VERSION`): opening it would run
 * initdb. In-memory databases never count (their memory goes away with them).
 */
export async function needsInit(dataDir: string): Promise<boolean> {
  if (dataDir.startsWith("memory://")) return false;
  try {
    await Deno.stat(`${dataDir}/PG_VERSION`);
    return false;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return true;
    throw error;
  }
}

/** What `pglite_init_worker.ts` answers: the cluster is ready, or why it is not. */
export type PGliteInitReply = { done: true } | { done: false; error: string };

/**
 * Creates the cluster in `dataDir` on a short-lived worker. initdb grows PGlite's WebAssembly
 * memory, which never shrinks: done on this thread, a new data dir left the server at ~720 MB RSS
 * for its whole life (~435 MB with the worker; ~325 MB when started on an existing data dir).
 */
async function initInWorker(dataDir: string): Promise<void> {
  const worker = new Worker(new URL("./pglite_init_worker.ts", import.meta.url), {
    type: "module",
  });
  try {
    const reply = await new Promise<PGliteInitReply>((resolve, reject) => {
      worker.onmessage = (event: MessageEvent<PGliteInitReply>) => resolve(event.data);
      worker.onerror = (event) => {
        // The worker could not run at all (e.g. its module failed to load).
        event.preventDefault();
        reject(new Error(`PGlite init worker failed: ${event.message}`));
      };
      worker.postMessage({ dataDir });
    });
    if (!reply.done) throw new Error(`PGlite init failed in ${dataDir}: ${reply.error}`);
  } finally {
    worker.terminate();
  }
}

/** Wraps an open PGlite instance in the {@link Database} interface. Closing it closes the instance. */
export function wrapPGlite(pglite: PGlite): Database & { pglite: PGlite } {
  const inFlight = new InFlight();
  const db = new Kysely<DB>({ dialect: countingDialect(new PGliteDialect({ pglite }), inFlight) });

  const notifier: Notifier = {
    async listen(channel, handler) {
      assertChannelName(channel);
      return await pglite.listen(channel, handler);
    },
    async notify(channel, payload) {
      assertChannelName(channel);
      assertNotifyPayload(payload);
      await inFlight.track(() => pglite.query("select pg_notify($1, $2)", [channel, payload]));
    },
  };

  return {
    kind: "pglite",
    pglite,
    db,
    notifier,
    rawTransaction<T>(fn: (session: SqlSession) => Promise<T>): Promise<T> {
      return pglite.transaction((tx) => {
        const session: SqlSession = {
          async exec(script) {
            await inFlight.track(() => tx.exec(script));
          },
          async query<Row>(text: string, params: unknown[] = []) {
            return (await inFlight.track(() => tx.query<Row>(text, params))).rows;
          },
        };
        return fn(session);
      });
    },
    async ping(timeoutMs = 2_000) {
      if (pglite.closed) throw new Error("database is closed");
      await withTimeout(
        inFlight.track(() => pglite.query("select 1")),
        timeoutMs,
        "database ping",
      );
    },
    get queriesInFlight() {
      return inFlight.count;
    },
    async close() {
      // Kysely's PGlite driver closes the instance when destroyed.
      await db.destroy();
      if (!pglite.closed) await pglite.close();
    },
  };
}

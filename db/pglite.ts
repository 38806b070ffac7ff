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
  const pglite = await PGlite.create({
    dataDir,
    ...(options.loadDataDir ? { loadDataDir: options.loadDataDir } : {}),
  });
  return wrapPGlite(pglite);
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

/**
 * Picks the database engine from the configuration: Postgres when `DATABASE_URL` is set, PGlite otherwise.
 *
 * @module
 */
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import type { Database } from "./database.ts";
import { needsInit, openPGlite } from "./pglite.ts";
import { openPostgres } from "./postgres.ts";

/**
 * Opens the database the configuration names. With `log`, the first start of an embedded
 * database says what it is doing (creating a cluster takes a few seconds and happens once).
 */
export async function openDatabase(
  config: Pick<Config, "database">,
  log?: Logger,
): Promise<Database> {
  const { database } = config;
  if (database.kind === "postgres") {
    return openPostgres({ url: database.url, poolSize: database.poolSize });
  }
  if (log && await needsInit(database.dataDir)) {
    log.info("creating the embedded database (first start only; takes a few seconds)", {
      dir: database.dataDir,
    });
  }
  return await openPGlite({ dataDir: database.dataDir });
}

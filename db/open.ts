/**
 * Picks the database engine from the configuration: Postgres when `DATABASE_URL` is set, PGlite otherwise.
 *
 * @module
 */
import type { Config } from "../config.ts";
import type { Database } from "./database.ts";
import { openPGlite } from "./pglite.ts";
import { openPostgres } from "./postgres.ts";

/** Opens the database the configuration names. */
export async function openDatabase(config: Pick<Config, "database">): Promise<Database> {
  const { database } = config;
  if (database.kind === "postgres") {
    return openPostgres({ url: database.url, poolSize: database.poolSize });
  }
  return await openPGlite({ dataDir: database.dataDir });
}

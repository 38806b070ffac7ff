/**
 * `deno task migrate [--dry-run | --status]`: applies pending migrations to the configured database.
 *
 * @module
 */
import { ConfigError, loadConfig } from "../config.ts";
import { openDatabase } from "./open.ts";
import { migrate, migrationStatus, readMigrations } from "./migrate.ts";

const USAGE = "usage: deno task migrate [--dry-run | --status]";

async function main(args: string[]): Promise<number> {
  const unknown = args.filter((arg) => arg !== "--dry-run" && arg !== "--status");
  if (unknown.length > 0 || args.length > 1) {
    console.error(USAGE);
    return 2;
  }
  let config;
  try {
    config = loadConfig(Deno.env.toObject());
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      return 1;
    }
    throw error;
  }
  const database = await openDatabase(config);
  const target = database.kind === "postgres"
    ? "Postgres (DATABASE_URL)"
    : `PGlite (${config.database.kind === "pglite" ? config.database.dataDir : ""})`;
  try {
    const migrations = await readMigrations();
    if (args[0] === "--status") {
      console.log(`migrations on ${target}:`);
      for (const m of await migrationStatus(database, migrations)) {
        const when = m.appliedAt ? ` ${m.appliedAt.toISOString()}` : "";
        const changed = m.changed ? " (file changed since it was applied!)" : "";
        console.log(`  ${m.state.padEnd(7)} ${m.name}${when}${changed}`);
      }
      return 0;
    }
    const dryRun = args[0] === "--dry-run";
    const names = await migrate(database, migrations, {
      dryRun,
      onMigration: (m) => console.log(`${dryRun ? "would apply" : "applying"} ${m.name}`),
    });
    console.log(
      names.length === 0
        ? `nothing to do: ${target} is up to date`
        : `${dryRun ? "would apply" : "applied"} ${names.length} migration(s) on ${target}`,
    );
    return 0;
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    return 1;
  } finally {
    await database.close();
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));

/**
 * The migration runner: `migrations/NNN_name.sql` files applied in order, each in its own transaction
 * together with its row in `migrations.applied_migrations`. Concurrent runners (several isolates starting
 * at once) serialise on an advisory lock and skip what another already applied.
 *
 * @module
 */
import type { Database, SqlSession } from "./database.ts";

/** One migration file. */
export interface Migration {
  /** File name without directory, e.g. `001_initial_schema.sql`. */
  name: string;
  sql: string;
  /** SHA-256 of the SQL text, hex. Recorded so that an edited, already-applied file is noticed. */
  checksum: string;
}

/** What `status` reports per migration. */
export interface MigrationStatus {
  name: string;
  state: "applied" | "pending";
  appliedAt?: Date;
  /** `true` when the file changed after it was applied. */
  changed?: boolean;
}

/** Raised when a migration fails; the database is left as it was before that migration. */
export class MigrationError extends Error {
  readonly migration: string;
  constructor(migration: string, cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(`migration ${migration} failed and was rolled back: ${reason}`, { cause });
    this.name = "MigrationError";
    this.migration = migration;
  }
}

const MIGRATION_FILE = /^\d{3,}_[a-z0-9_]+\.sql$/;
/** Any fixed 64-bit number; all runners agree on it. */
const ADVISORY_LOCK_KEY = 727_465_001;

/** The default migrations directory, next to this module's parent. */
export const DEFAULT_MIGRATIONS_DIR = new URL("../migrations/", import.meta.url);

/** Reads and sorts the migration files in `dir`. Files not named `NNN_name.sql` are an error. */
export async function readMigrations(
  dir: URL | string = DEFAULT_MIGRATIONS_DIR,
): Promise<Migration[]> {
  const migrations: Migration[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.isFile) continue;
    if (!MIGRATION_FILE.test(entry.name)) {
      throw new Error(
        `unexpected file in migrations directory: ${entry.name} (expected NNN_name.sql)`,
      );
    }
    const path = typeof dir === "string" ? `${dir}/${entry.name}` : new URL(entry.name, dir);
    const sql = await Deno.readTextFile(path);
    migrations.push({ name: entry.name, sql, checksum: await sha256Hex(sql) });
  }
  migrations.sort((a, b) => a.name.localeCompare(b.name));
  for (let i = 1; i < migrations.length; i++) {
    const prefix = (m: Migration) => m.name.split("_")[0];
    if (prefix(migrations[i]!) === prefix(migrations[i - 1]!)) {
      throw new Error(
        `two migrations share a number: ${migrations[i - 1]!.name}, ${migrations[i]!.name}`,
      );
    }
  }
  return migrations;
}

async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

const BOOKKEEPING_SQL = `
  CREATE SCHEMA IF NOT EXISTS migrations;
  CREATE TABLE IF NOT EXISTS migrations.applied_migrations (
    "name" TEXT PRIMARY KEY,
    "checksum" TEXT NOT NULL,
    "appliedAt" TIMESTAMPTZ NOT NULL DEFAULT now()
  );`;

async function appliedMigrations(
  session: SqlSession,
): Promise<Map<string, { checksum: string; appliedAt: Date }>> {
  const rows = await session.query<{ name: string; checksum: string; appliedAt: Date | string }>(
    `SELECT "name", "checksum", "appliedAt" FROM migrations.applied_migrations`,
  );
  return new Map(rows.map((row) => [row.name, {
    checksum: row.checksum,
    appliedAt: new Date(row.appliedAt),
  }]));
}

/** Lists every migration file with whether it has been applied. */
export async function migrationStatus(
  database: Database,
  migrations: Migration[],
): Promise<MigrationStatus[]> {
  const applied = await database.rawTransaction(async (session) => {
    const [{ exists }] = await session.query<{ exists: boolean }>(
      `SELECT to_regclass('migrations.applied_migrations') IS NOT NULL AS "exists"`,
    ) as [{ exists: boolean }];
    return exists ? await appliedMigrations(session) : new Map();
  });
  return migrations.map((migration) => {
    const record = applied.get(migration.name);
    return record
      ? {
        name: migration.name,
        state: "applied",
        appliedAt: record.appliedAt,
        changed: record.checksum !== migration.checksum,
      }
      : { name: migration.name, state: "pending" };
  });
}

/** Options for {@link migrate}. */
export interface MigrateOptions {
  /** Report what would run without changing anything. */
  dryRun?: boolean;
  /** Called before each migration is applied (or would be, in a dry run). */
  onMigration?: (migration: Migration) => void;
}

/**
 * Applies every pending migration in order. Returns the names applied (or that would be, for a dry run).
 * Throws {@link MigrationError} naming the file when one fails; earlier ones stay applied.
 */
export async function migrate(
  database: Database,
  migrations: Migration[],
  options: MigrateOptions = {},
): Promise<string[]> {
  if (options.dryRun) {
    const pending = (await migrationStatus(database, migrations)).filter((m) =>
      m.state === "pending"
    );
    for (const status of pending) {
      options.onMigration?.(migrations.find((m) => m.name === status.name)!);
    }
    return pending.map((m) => m.name);
  }
  const applied: string[] = [];
  for (const migration of migrations) {
    try {
      const didApply = await database.rawTransaction(async (session) => {
        // Serialise concurrent runners; the lock is released at commit/rollback.
        await session.query(`SELECT pg_advisory_xact_lock(${ADVISORY_LOCK_KEY})`);
        await session.exec(BOOKKEEPING_SQL);
        const done = await session.query(
          `SELECT 1 FROM migrations.applied_migrations WHERE "name" = $1`,
          [migration.name],
        );
        if (done.length > 0) return false;
        options.onMigration?.(migration);
        await session.exec(migration.sql);
        await session.query(
          `INSERT INTO migrations.applied_migrations ("name", "checksum") VALUES ($1, $2)`,
          [migration.name, migration.checksum],
        );
        return true;
      });
      if (didApply) applied.push(migration.name);
    } catch (error) {
      throw new MigrationError(migration.name, error);
    }
  }
  return applied;
}

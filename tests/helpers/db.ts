/**
 * Test databases: a fresh, isolated database per test. With `DATABASE_URL` set, a new Postgres database
 * is created on that server (and dropped afterwards); otherwise an in-memory PGlite is loaded from a
 * cached data-dir snapshot (well under a second, instead of several seconds for a fresh cluster).
 *
 * @module
 */
import { PGlite } from "@electric-sql/pglite";
import postgres from "postgres";
import type { Database } from "../../db/database.ts";
import { migrate, readMigrations } from "../../db/migrate.ts";
import { wrapPGlite } from "../../db/pglite.ts";
import { openPostgres } from "../../db/postgres.ts";

/** A test database that removes itself when disposed. */
export type TestDatabase = Database & AsyncDisposable & { url?: string };

/** The server given by `DATABASE_URL`, if the tests run against real Postgres. */
export const TEST_DATABASE_URL = Deno.env.get("DATABASE_URL") || undefined;

/** Which engine the tests run on. */
export const TEST_ENGINE: "postgres" | "pglite" = TEST_DATABASE_URL ? "postgres" : "pglite";

const snapshots = new Map<string, Promise<Blob>>();

/** Snapshots are cached on disk across test files (each file runs in its own isolate). */
const CACHE_DIR = new URL("../../.data/test-cache/", import.meta.url);

async function cacheKey(migrated: boolean): Promise<string> {
  const { default: pgliteVersion } = await import("./pglite_version.ts");
  if (!migrated) return `pglite-${pgliteVersion}-empty`;
  const digest = (await readMigrations()).map((m) => m.checksum).join(",");
  const hash = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(digest));
  const short = [...new Uint8Array(hash)].slice(0, 8).map((b) => b.toString(16).padStart(2, "0"))
    .join("");
  return `pglite-${pgliteVersion}-migrated-${short}`;
}

async function buildSnapshot(migrated: boolean): Promise<Blob> {
  const pglite = migrated
    ? await PGlite.create({ loadDataDir: await pgliteSnapshot(false) })
    : await PGlite.create();
  if (migrated) await migrate(wrapPGlite(pglite), await readMigrations());
  const archive = await pglite.dumpDataDir("gzip");
  await pglite.close();
  return archive;
}

/** A PGlite data-dir archive, fresh or migrated: from memory, else the disk cache, else built. */
function pgliteSnapshot(migrated: boolean): Promise<Blob> {
  const key = migrated ? "migrated" : "empty";
  let snapshot = snapshots.get(key);
  if (!snapshot) {
    snapshot = (async () => {
      const file = new URL(`${await cacheKey(migrated)}.tar.gz`, CACHE_DIR);
      try {
        return new Blob([await Deno.readFile(file)]);
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
      const archive = await buildSnapshot(migrated);
      await Deno.mkdir(CACHE_DIR, { recursive: true });
      // Write then rename, so a parallel test file never reads half an archive.
      const temp = new URL(`${crypto.randomUUID()}.tmp`, CACHE_DIR);
      await Deno.writeFile(temp, new Uint8Array(await archive.arrayBuffer()));
      await Deno.rename(temp, file);
      return archive;
    })();
    snapshots.set(key, snapshot);
  }
  return snapshot;
}

let counter = 0;

/** Creates a database for one test. `migrated` (default true) applies `migrations/` first. */
export async function openTestDatabase(
  { migrated = true }: { migrated?: boolean } = {},
): Promise<TestDatabase> {
  if (TEST_DATABASE_URL) {
    const name = `test_${Date.now().toString(36)}_${Deno.pid}_${counter++}`;
    const admin = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
    await admin.unsafe(`CREATE DATABASE "${name}"`);
    await admin.end();
    const url = new URL(TEST_DATABASE_URL);
    url.pathname = `/${name}`;
    const database = openPostgres({ url: url.href, poolSize: 4 });
    if (migrated) await migrate(database, await readMigrations());
    return Object.assign(database, {
      url: url.href,
      async [Symbol.asyncDispose]() {
        await database.close();
        const dropper = postgres(TEST_DATABASE_URL!, { max: 1, onnotice: () => {} });
        await dropper.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
        await dropper.end();
      },
    });
  }
  const pglite = await PGlite.create({ loadDataDir: await pgliteSnapshot(migrated) });
  const database = wrapPGlite(pglite);
  return Object.assign(database, {
    async [Symbol.asyncDispose]() {
      await database.close();
    },
  });
}

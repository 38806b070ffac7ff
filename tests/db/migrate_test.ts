import assert from "node:assert/strict";
import { sql } from "kysely";
import { migrate, MigrationError, migrationStatus, readMigrations } from "../../db/migrate.ts";
import { openTestDatabase, TEST_ENGINE } from "../helpers/db.ts";

const engine = `[${TEST_ENGINE}]`;

async function tableExists(database: Awaited<ReturnType<typeof openTestDatabase>>, name: string) {
  const { rows } = await sql<{ found: boolean }>`select to_regclass(${name}) is not null as found`
    .execute(database.db);
  return rows[0]!.found;
}

Deno.test(`${engine} migrations apply on a fresh database, then re-running is a no-op`, async () => {
  await using database = await openTestDatabase({ migrated: false });
  const migrations = await readMigrations();
  assert.ok(migrations.length >= 1);
  assert.equal(migrations[0]!.name, "001_initial_schema.sql");

  const applied = await migrate(database, migrations);
  assert.deepEqual(applied, migrations.map((m) => m.name));
  for (const table of ['"user"', "file", "file_state", "asset", "user_mutation_number"]) {
    assert.ok(await tableExists(database, table), `${table} exists`);
  }
  assert.deepEqual(await migrate(database, migrations), []);
  const rows = await database.db.selectFrom("migrations.applied_migrations").selectAll().execute();
  assert.equal(rows.length, migrations.length);
});

Deno.test(`${engine} status lists pending, then applied with the time`, async () => {
  await using database = await openTestDatabase({ migrated: false });
  const migrations = await readMigrations();
  const before = await migrationStatus(database, migrations);
  assert.ok(before.every((m) => m.state === "pending"));
  await migrate(database, migrations);
  const after = await migrationStatus(database, migrations);
  assert.ok(after.every((m) => m.state === "applied" && m.appliedAt instanceof Date && !m.changed));
});

Deno.test(`${engine} status notices an applied migration whose file changed`, async () => {
  await using database = await openTestDatabase({ migrated: false });
  const migrations = await readMigrations();
  await migrate(database, migrations);
  const edited = migrations.map((m, i) => i === 0 ? { ...m, checksum: "0".repeat(64) } : m);
  const status = await migrationStatus(database, edited);
  assert.equal(status[0]!.changed, true);
});

Deno.test(`${engine} dry-run reports pending migrations and changes nothing`, async () => {
  await using database = await openTestDatabase({ migrated: false });
  const migrations = await readMigrations();
  const seen: string[] = [];
  const wouldApply = await migrate(database, migrations, {
    dryRun: true,
    onMigration: (m) => seen.push(m.name),
  });
  assert.deepEqual(wouldApply, migrations.map((m) => m.name));
  assert.deepEqual(seen, wouldApply);
  assert.equal(await tableExists(database, "file"), false);
  assert.equal(await tableExists(database, "migrations.applied_migrations"), false);
});

Deno.test(`${engine} a failing migration rolls back fully and names the file`, async () => {
  await using database = await openTestDatabase({ migrated: false });
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/001_good.sql`, "CREATE TABLE good (id INT PRIMARY KEY);");
    await Deno.writeTextFile(
      `${dir}/002_bad.sql`,
      "CREATE TABLE half_done (id INT);\nINSERT INTO good VALUES (1);\nSELECT * FROM no_such_table;",
    );
    await Deno.writeTextFile(`${dir}/003_later.sql`, "CREATE TABLE later (id INT);");
    const migrations = await readMigrations(dir);
    const error = await migrate(database, migrations).then(
      () => assert.fail("expected the migration to fail"),
      (e: unknown) => e,
    );
    assert.ok(error instanceof MigrationError);
    assert.equal(error.migration, "002_bad.sql");
    assert.match(error.message, /002_bad\.sql/);
    assert.match(error.message, /no_such_table/);
    // 001 stays applied; nothing of 002 remains; 003 never ran.
    assert.ok(await tableExists(database, "good"));
    assert.equal(await tableExists(database, "half_done"), false);
    assert.equal(await tableExists(database, "later"), false);
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from good`.execute(
      database.db,
    );
    assert.equal(rows[0]!.n, 0);
    const status = await migrationStatus(database, migrations);
    assert.deepEqual(status.map((m) => m.state), ["applied", "pending", "pending"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test(`${engine} concurrent runners apply each migration once`, async () => {
  await using database = await openTestDatabase({ migrated: false });
  const migrations = await readMigrations();
  const results = await Promise.all([migrate(database, migrations), migrate(database, migrations)]);
  assert.deepEqual(results.flat().sort(), migrations.map((m) => m.name).sort());
});

Deno.test("migration files must be named NNN_name.sql and numbers must be unique", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/001_a.sql`, "select 1;");
    await Deno.writeTextFile(`${dir}/001_b.sql`, "select 1;");
    await assert.rejects(readMigrations(dir), /share a number/);
    await Deno.remove(`${dir}/001_b.sql`);
    await Deno.writeTextFile(`${dir}/notes.txt`, "");
    await assert.rejects(readMigrations(dir), /notes\.txt/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

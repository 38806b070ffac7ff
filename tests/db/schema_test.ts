import assert from "node:assert/strict";
import { openTestDatabase, TEST_ENGINE } from "../helpers/db.ts";

const engine = `[${TEST_ENGINE}]`;
const now = 1_763_000_000_000;

async function seed(database: Awaited<ReturnType<typeof openTestDatabase>>) {
  await database.db.insertInto("user").values([
    { id: "owner", name: "Owner", email: "o@example.com", createdAt: now, updatedAt: now },
    { id: "guest", name: "Guest", email: "g@example.com", createdAt: now, updatedAt: now },
  ]).execute();
  await database.db.insertInto("file").values({
    id: "f1",
    name: "Plan",
    ownerId: "owner",
    publishedSlug: "slug-f1",
    shared: true,
    createdAt: now,
    updatedAt: now,
  }).execute();
  await database.db.insertInto("file_state").values([
    { userId: "owner", fileId: "f1", firstVisitAt: now, isFileOwner: true },
    { userId: "guest", fileId: "f1", firstVisitAt: now, isFileOwner: false },
  ]).execute();
}

const stateUsers = async (database: Awaited<ReturnType<typeof openTestDatabase>>) =>
  (await database.db.selectFrom("file_state").select("userId").where("fileId", "=", "f1")
    .orderBy("userId").execute()).map((r) => r.userId);

Deno.test(`${engine} unsharing a file deletes the guests' file_state rows, not the owner's`, async () => {
  await using database = await openTestDatabase();
  await seed(database);
  assert.deepEqual(await stateUsers(database), ["guest", "owner"]);
  // Other updates, and shared staying true, leave guests alone.
  await database.db.updateTable("file").set({ name: "Renamed", shared: true }).where(
    "id",
    "=",
    "f1",
  )
    .execute();
  assert.deepEqual(await stateUsers(database), ["guest", "owner"]);
  await database.db.updateTable("file").set({ shared: false }).where("id", "=", "f1").execute();
  assert.deepEqual(await stateUsers(database), ["owner"]);
});

Deno.test(`${engine} schema defaults, BIGINT epoch-ms as numbers, and cascades`, async () => {
  await using database = await openTestDatabase();
  await seed(database);
  const file = await database.db.selectFrom("file").selectAll().where("id", "=", "f1")
    .executeTakeFirstOrThrow();
  assert.equal(file.createdAt, now);
  assert.equal(typeof file.createdAt, "number");
  assert.equal(file.isDeleted, false);
  assert.equal(file.sharedLinkType, "edit");
  assert.equal(file.published, false);
  assert.equal(file.lastPublished, 0);
  await database.db.insertInto("asset").values({
    objectName: "a.png",
    fileId: "f1",
    userId: "guest",
  })
    .execute();
  await database.db.insertInto("user_mutation_number").values({
    userId: "owner",
    mutationNumber: 7,
  })
    .execute();
  // Deleting the guest keeps the asset with no user; deleting the owner removes everything they own.
  await database.db.deleteFrom("user").where("id", "=", "guest").execute();
  const asset = await database.db.selectFrom("asset").selectAll().executeTakeFirstOrThrow();
  assert.equal(asset.userId, null);
  await database.db.deleteFrom("user").where("id", "=", "owner").execute();
  assert.equal((await database.db.selectFrom("file").selectAll().execute()).length, 0);
  assert.equal((await database.db.selectFrom("asset").selectAll().execute()).length, 0);
  assert.equal(
    (await database.db.selectFrom("user_mutation_number").selectAll().execute()).length,
    0,
  );
});

Deno.test(`${engine} sharedLinkType accepts only view and edit`, async () => {
  await using database = await openTestDatabase();
  await seed(database);
  await assert.rejects(
    database.db.updateTable("file")
      // deno-lint-ignore no-explicit-any
      .set({ sharedLinkType: "admin" as any }).where("id", "=", "f1").execute(),
    /check constraint/i,
  );
});

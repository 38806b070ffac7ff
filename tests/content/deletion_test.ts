/**
 * Deleting a file: a soft delete, then the background hard delete removes the room's KV data, its
 * history, its published copy, its assets (rows and blob bytes) and the file row, and that work
 * survives a restart of the server.
 */
import assert from "node:assert/strict";
import { connectClient } from "../helpers/tldraw_client.ts";
import { geoShape } from "../helpers/raw_socket.ts";
import { eventually, startAuthServer } from "../helpers/user_sync_client.ts";
import { api, seedFiles, tempBlobs } from "../helpers/content.ts";
import { openTestDatabase, TEST_ENGINE } from "../helpers/db.ts";
import { withOverrides } from "../helpers/overrides.ts";
import type { Database } from "../../db/database.ts";
import { testConfig } from "../../config.ts";

const engine = `[${TEST_ENGINE}]`;

/** Hard deletes at once (the recovery window is tested in file_recovery_test.ts). */
const config = { content: { ...testConfig().content, fileRecoveryMs: 0 } };

async function kvKeys(kv: Deno.Kv, roomId: string): Promise<number> {
  let count = 0;
  for await (const _ of kv.list({ prefix: ["tldraw", roomId] })) count++;
  return count;
}

/** Everything a file leaves behind, counted. */
async function leftovers(kv: Deno.Kv, database: Database, blobDir: string, fileId: string) {
  const { db } = database;
  const count = async (
    table: "room_history" | "published_file" | "asset",
    column: string,
    value: string,
  ) =>
    (await db.selectFrom(table).select(db.fn.countAll<number>().as("n"))
      .where(column as never, "=", value as never).executeTakeFirstOrThrow()).n;
  const objects: string[] = [];
  try {
    for await (const entry of Deno.readDir(`${blobDir}/objects`)) objects.push(entry.name);
  } catch { /* no uploads yet */ }
  return {
    kvKeys: await kvKeys(kv, `file:${fileId}`),
    history: Number(await count("room_history", "roomId", `file:${fileId}`)),
    published: Number(await count("published_file", "fileId", fileId)),
    assets: Number(await count("asset", "fileId", fileId)),
    objects: objects.filter((name) => name.startsWith(fileId)).length,
    fileRow: (await db.selectFrom("file").select("id").where("id", "=", fileId).execute()).length,
    queued: (await db.selectFrom("file_deletion").select("fileId").execute()).length,
    orphans: (await db.selectFrom("asset_orphan").select("objectName").execute()).length,
  };
}

/** Fills file `fileId`: room records, a history version, a published copy, two assets. */
async function fill(server: Awaited<ReturnType<typeof startAuthServer>>, fileId: string) {
  {
    await using client = connectClient(
      `${server.wsUrl}/app/file/${fileId}?token=${await server.token("alice")}`,
    );
    await client.loaded;
    client.store.put([geoShape(`shape:${fileId}`) as never]);
    await eventually(async () =>
      (await server.deps.kv.get(["tldraw", `file:${fileId}`, "rec", `shape:${fileId}`])).value !==
        null
    );
  }
  for (const n of [1, 2]) {
    const response = await api(server, `/app/uploads/${fileId}-asset-${n}.png?fileId=${fileId}`, {
      as: "alice",
      body: new Uint8Array([1, 2, 3, n]),
      headers: { "content-type": "image/png" },
    });
    assert.equal(response.status, 201);
  }
  assert.equal(
    (await api(server, `/app/file/${fileId}/publish`, { method: "POST", as: "alice" })).status,
    200,
  );
  await eventually(async () => {
    const { body } = await api(server, `/app/file/${fileId}/history`, { as: "alice" });
    return body.versions.length > 0;
  });
}

Deno.test(`${engine} deletion: a deleted file leaves nothing in KV, Postgres or the blob store`, async () => {
  await using blobs = await tempBlobs();
  await using server = await startAuthServer({
    config,
    content: { blobs: blobs.blobs, historyIntervalMs: 300, deletionPollMs: 200 },
  });
  await seedFiles(server, { f1: {}, f2: {} });
  await fill(server, "f1");
  await fill(server, "f2");
  const before = await leftovers(server.deps.kv, server.deps.database, blobs.dir, "f1");
  assert.ok(before.kvKeys > 0 && before.history > 0 && before.published === 1);
  assert.equal(before.assets, 2);
  assert.equal(before.objects, 2);

  // The owner deletes it through the user-data channel (a soft delete).
  await using alice = await server.connect("alice");
  await alice.initialData();
  const result = await alice.mutate("d1", [{
    table: "file",
    event: "update",
    row: { id: "f1", isDeleted: true },
  }]);
  assert.equal(result.type, "commit");
  assert.equal((await api(server, "/app/published/slug-f1")).status, 404);

  await eventually(
    async () => {
      const left = await leftovers(server.deps.kv, server.deps.database, blobs.dir, "f1");
      return Object.values(left).every((n) => n === 0);
    },
    5_000,
    "the hard delete",
  );
  // The other file is untouched.
  const other = await leftovers(server.deps.kv, server.deps.database, blobs.dir, "f2");
  assert.ok(other.kvKeys > 0 && other.history > 0);
  assert.equal(other.published, 1);
  assert.equal(other.assets, 2);
  assert.equal(other.objects, 2);
  assert.equal(other.fileRow, 1);
  assert.equal((await api(server, "/app/uploads/f2-asset-1.png")).status, 200);
  assert.equal((await api(server, "/app/uploads/f1-asset-1.png")).status, 404);
});

Deno.test(`${engine} deletion: the hard delete survives a restart`, async () => {
  await using blobs = await tempBlobs();
  await using database = await openTestDatabase();
  using kv = await Deno.openKv(":memory:");
  {
    // This server cannot delete room data (a KV outage): the job stays queued.
    await using first = await startAuthServer({
      config,
      database,
      kv,
      content: {
        blobs: blobs.blobs,
        historyIntervalMs: 300,
        deletionPollMs: 100,
        wrapStore: (store) =>
          withOverrides(store, { deleteRoom: () => Promise.reject(new Error("KV unavailable")) }),
      },
    });
    await seedFiles(first, { f1: {} });
    await fill(first, "f1");
    // Deleted by plain SQL: the trigger queues it all the same.
    await database.db.updateTable("file").set({ isDeleted: true }).where("id", "=", "f1")
      .execute();
    await eventually(async () => {
      const job = await database.db.selectFrom("file_deletion").selectAll().executeTakeFirst();
      return (job?.attempts ?? 0) >= 1;
    });
    const left = await leftovers(kv, database, blobs.dir, "f1");
    assert.ok(left.kvKeys > 0);
    assert.equal(left.queued, 1);
  }
  // A new process on the same storage finishes the job on start.
  await using second = await startAuthServer({
    config,
    database,
    kv,
    content: { blobs: blobs.blobs, deletionPollMs: 60_000 },
  });
  await eventually(
    async () => {
      const left = await leftovers(kv, database, blobs.dir, "f1");
      return Object.values(left).every((n) => n === 0);
    },
    5_000,
    "the hard delete after the restart",
  );
  void second;
});

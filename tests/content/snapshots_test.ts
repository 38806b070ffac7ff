/**
 * Snapshots ("share a copy") and publishing with real tldraw clients, the real user-data channel and
 * the real database.
 */
import assert from "node:assert/strict";
import { createTLSchema } from "@tldraw/tlschema";
import { connectClient, documentRecords } from "../helpers/tldraw_client.ts";
import { geoShape } from "../helpers/raw_socket.ts";
import { eventually, startAuthServer } from "../helpers/user_sync_client.ts";
import { api, seedFiles, tempBlobs } from "../helpers/content.ts";
import { TEST_ENGINE } from "../helpers/db.ts";
import { withOverrides } from "../helpers/overrides.ts";

const engine = `[${TEST_ENGINE}]`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function committed(server: { deps: { kv: Deno.Kv } }, roomId: string, recordId: string) {
  return (await server.deps.kv.get(["tldraw", roomId, "rec", recordId])).value !== null;
}

const ids = (records: { id: string }[]) => records.map((r) => r.id).sort();

Deno.test(`${engine} snapshots: copy a room, read it back, join it read-only`, async () => {
  await using blobs = await tempBlobs();
  await using server = await startAuthServer({ content: { blobs: blobs.blobs } });
  await using source = connectClient(`${server.wsUrl}/r/source-room`);
  await source.loaded;
  source.store.put([geoShape("shape:a") as never, geoShape("shape:b", { x: 50 }) as never]);
  await eventually(() => committed(server, "source-room", "shape:b"));

  const created = await api(server, "/snapshots", { json: { roomId: "source-room" } });
  assert.equal(created.status, 201);
  const slug = created.body.slug as string;
  assert.match(slug, /^[A-Za-z0-9_-]{16,}$/);
  assert.equal(created.body.roomId, slug);

  // The copy does not follow the source.
  source.store.put([geoShape("shape:later") as never]);
  await eventually(() => committed(server, "source-room", "shape:later"));
  const read = await api(server, `/snapshot/${slug}`);
  assert.equal(read.status, 200);
  const snapshotIds = ids(read.body.records);
  assert.ok(snapshotIds.includes("shape:a") && snapshotIds.includes("shape:b"));
  assert.ok(!snapshotIds.includes("shape:later"));
  assert.match(read.headers.get("cache-control") ?? "", /immutable/);

  // A real client joins the slug read-only through /v/ and /ro/ and sees the copy.
  for (const prefix of ["v", "ro"]) {
    await using viewer = connectClient(`${server.wsUrl}/${prefix}/${slug}`);
    await viewer.loaded;
    assert.equal(viewer.readonly(), true);
    await eventually(() => viewer.store.has("shape:a" as never));
    assert.ok(!viewer.store.has("shape:later" as never));
    // Its writes go nowhere.
    viewer.store.put([geoShape("shape:vandal") as never]);
    await sleep(300);
  }
  const again = await api(server, `/snapshot/${slug}`);
  assert.deepEqual(ids(again.body.records), snapshotIds);
  assert.equal(await committed(server, `snapshot:${slug}`, "shape:vandal"), false);
  // /ro/ of an ordinary room id still reaches that room.
  await using live = connectClient(`${server.wsUrl}/ro/source-room`);
  await live.loaded;
  await eventually(() => live.store.has("shape:later" as never));
});

Deno.test(`${engine} snapshots: a posted document is migrated and stored; bad input is refused`, async () => {
  await using blobs = await tempBlobs();
  await using server = await startAuthServer({ content: { blobs: blobs.blobs } });
  await using client = connectClient(`${server.wsUrl}/r/doc-room`);
  await client.loaded;
  client.store.put([geoShape("shape:posted") as never]);
  const snapshot = {
    schema: createTLSchema().serialize(),
    records: documentRecords(client.store),
  };
  const created = await api(server, "/snapshots", { json: { snapshot } });
  assert.equal(created.status, 201);
  const read = await api(server, `/snapshot/${created.body.slug}`);
  assert.ok(ids(read.body.records).includes("shape:posted"));

  assert.equal((await api(server, "/snapshots", { json: { roomId: "no-such-room" } })).status, 404);
  assert.equal((await api(server, "/snapshots", { json: { roomId: "../etc" } })).status, 400);
  assert.equal((await api(server, "/snapshots", { body: "not json" })).status, 400);
  const future = {
    snapshot: { schema: { schemaVersion: 99, sequences: {} }, records: [] },
  };
  assert.equal((await api(server, "/snapshots", { json: future })).status, 400);
  assert.equal((await api(server, "/snapshot/unknown-slug")).status, 404);
  assert.equal((await api(server, "/snapshot/bad$slug")).status, 404);
});

Deno.test(`${engine} publishing: through the user-data channel, republish, unpublish, publish_failed`, async () => {
  await using blobs = await tempBlobs();
  await using server = await startAuthServer({
    content: {
      blobs: blobs.blobs,
      // f2's room cannot be read (a storage outage for that room).
      wrapStore: (store) =>
        withOverrides(store, {
          load: (roomId) =>
            roomId === "file:f2" ? Promise.reject(new Error("KV unavailable")) : store.load(roomId),
        }),
    },
  });
  await seedFiles(server, { f1: {}, f2: {} });
  const token = await server.token("alice");
  await using editor = connectClient(`${server.wsUrl}/app/file/f1?token=${token}`);
  await editor.loaded;
  editor.store.put([geoShape("shape:one") as never]);
  await eventually(() => committed(server, "file:f1", "shape:one"));

  await using alice = await server.connect("alice");
  await alice.initialData();
  assert.equal((await api(server, "/app/published/slug-f1")).status, 404);
  const t1 = Date.now();
  const published = await alice.mutate("m1", [{
    table: "file",
    event: "update",
    row: { id: "f1", published: true, lastPublished: t1 },
  }]);
  assert.equal(published.type, "commit");
  const first = await api(server, "/app/published/slug-f1");
  assert.equal(first.status, 200);
  assert.ok(ids(first.body.records).includes("shape:one"));

  // Edits do not reach the published copy until it is published again.
  editor.store.put([geoShape("shape:two") as never]);
  await eventually(() => committed(server, "file:f1", "shape:two"));
  assert.ok(!ids((await api(server, "/app/published/slug-f1")).body.records).includes("shape:two"));
  const republished = await alice.mutate("m2", [{
    table: "file",
    event: "update",
    row: { id: "f1", lastPublished: t1 + 1 },
  }]);
  assert.equal(republished.type, "commit");
  const second = await api(server, "/app/published/slug-f1");
  assert.ok(ids(second.body.records).includes("shape:two"));
  // Revalidation with the ETag.
  const etag = second.headers.get("etag")!;
  const notModified = await api(server, "/app/published/slug-f1", {
    headers: { "if-none-match": etag },
  });
  assert.equal(notModified.status, 304);

  // The copy cannot be written: the mutation is rejected with publish_failed and nothing changes.
  const failed = await alice.mutate("m3", [{
    table: "file",
    event: "update",
    row: { id: "f2", published: true, lastPublished: Date.now() },
  }]);
  assert.deepEqual(failed, { type: "reject", mutationId: "m3", errorCode: "publish_failed" });
  const f2 = await server.deps.database.db.selectFrom("file").select("published")
    .where("id", "=", "f2").executeTakeFirstOrThrow();
  assert.equal(f2.published, false);

  const unpublished = await alice.mutate("m4", [{
    table: "file",
    event: "update",
    row: { id: "f1", published: false },
  }]);
  assert.equal(unpublished.type, "commit");
  assert.equal((await api(server, "/app/published/slug-f1")).status, 404);
  const rows = await server.deps.database.db.selectFrom("published_file").selectAll().execute();
  assert.equal(rows.length, 0);
});

Deno.test(`${engine} publishing: over REST, owner only`, async () => {
  await using blobs = await tempBlobs();
  await using server = await startAuthServer({ content: { blobs: blobs.blobs } });
  await seedFiles(server, { f1: { shared: true, sharedLinkType: "edit" } });
  const token = await server.token("alice");
  await using editor = connectClient(`${server.wsUrl}/app/file/f1?token=${token}`);
  await editor.loaded;
  editor.store.put([geoShape("shape:rest") as never]);
  await eventually(() => committed(server, "file:f1", "shape:rest"));

  assert.equal((await api(server, "/app/file/f1/publish", { method: "POST" })).status, 401);
  assert.equal(
    (await api(server, "/app/file/f1/publish", { method: "POST", as: "bob" })).status,
    403,
  );
  assert.equal(
    (await api(server, "/app/file/nope/publish", { method: "POST", as: "alice" })).status,
    404,
  );
  const done = await api(server, "/app/file/f1/publish", { method: "POST", as: "alice" });
  assert.equal(done.status, 200);
  assert.equal(done.body.slug, "slug-f1");
  const copy = await api(server, "/app/published/slug-f1");
  assert.ok(ids(copy.body.records).includes("shape:rest"));
  const file = await server.deps.database.db.selectFrom("file").select([
    "published",
    "lastPublished",
  ])
    .where("id", "=", "f1").executeTakeFirstOrThrow();
  assert.equal(file.published, true);
  assert.ok(file.lastPublished > 0);

  const removed = await api(server, "/app/file/f1/publish", { method: "DELETE", as: "alice" });
  assert.equal(removed.status, 200);
  assert.equal((await api(server, "/app/published/slug-f1")).status, 404);
});

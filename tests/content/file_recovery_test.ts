/**
 * New files that start as a copy (`createSource`: another file, a published copy, a snapshot, an
 * anonymous room), through the user-data channel and `POST /app/files`; refused sources create
 * nothing. Deleted files are restorable by their owner within the recovery window, and hard-deleted
 * after it.
 */
import assert from "node:assert/strict";
import { testConfig } from "../../config.ts";
import { KvRoomStore } from "../../sync/tldraw/kv_room_store.ts";
import { readRoomDocument } from "../../sync/content/document.ts";
import { api, seedFiles } from "../helpers/content.ts";
import { geoShape } from "../helpers/raw_socket.ts";
import { connectClient } from "../helpers/tldraw_client.ts";
import {
  type AuthServer,
  eventually,
  fileRow,
  startAuthServer,
} from "../helpers/user_sync_client.ts";
import { TEST_ENGINE } from "../helpers/db.ts";

const engine = `[${TEST_ENGINE}]`;

/** Draws `shapes` into a room through the real client. */
async function draw(server: AuthServer, url: string, shapes: string[]): Promise<void> {
  await using client = connectClient(url);
  await client.loaded;
  client.store.put(shapes.map((id) => geoShape(id) as never));
  const store = new KvRoomStore(server.deps.kv);
  const roomId = url.includes("/app/file/")
    ? `file:${url.split("/app/file/")[1]!.split("?")[0]}`
    : url.split("/r/")[1]!;
  await eventually(async () => {
    const document = await readRoomDocument(store, roomId);
    return shapes.every((id) => document?.records.some((record) => record.id === id));
  });
}

/** The ids of the shapes and the document's name in a file's room, as stored. */
async function fileDocument(server: AuthServer, fileId: string) {
  const document = await readRoomDocument(new KvRoomStore(server.deps.kv), `file:${fileId}`);
  return {
    shapes: (document?.records ?? []).filter((r) => r.typeName === "shape").map((r) => r.id)
      .sort(),
    name: document?.records.find((r) => r.id === "document:document")?.name,
  };
}

async function fileCount(server: AuthServer): Promise<number> {
  return (await server.deps.database.db.selectFrom("file").select("id").execute()).length;
}

Deno.test(`${engine} createSource: a new file starts as a copy of a file, a published copy, a snapshot or a room`, async () => {
  await using server = await startAuthServer();
  await seedFiles(server, { orig: {}, pub: {} });
  const aliceToken = await server.token("alice");
  await draw(server, `${server.wsUrl}/app/file/orig?token=${aliceToken}`, ["shape:a1", "shape:a2"]);
  await draw(server, `${server.wsUrl}/app/file/pub?token=${aliceToken}`, ["shape:p1"]);
  assert.equal(
    (await api(server, "/app/file/pub/publish", { method: "POST", as: "alice" })).status,
    200,
  );
  await draw(server, `${server.wsUrl}/r/anon-room`, ["shape:r1"]);
  const snapshot = await api(server, "/snapshots", { json: { roomId: "anon-room" } });
  assert.equal(snapshot.status, 201);
  const readonlyId = (await api(server, "/readonly-slug/anon-room")).body.slug;

  // Through the user-data channel: a duplicate of one of alice's files.
  await using alice = await server.connect("alice");
  await alice.initialData();
  const outcome = await alice.mutate("dup", [{
    table: "file",
    event: "insert",
    row: fileRow("dup", "alice", { name: "Copy of orig", createSource: "f/orig" }),
  }]);
  assert.equal(outcome.type, "commit", JSON.stringify(outcome));
  assert.deepEqual(await fileDocument(server, "dup"), {
    shapes: ["shape:a1", "shape:a2"],
    name: "Copy of orig",
  });

  // Through the route: every kind of source.
  const sources: [string, string[]][] = [
    ["f/orig", ["shape:a1", "shape:a2"]],
    ["p/slug-pub", ["shape:p1"]],
    [`s/${snapshot.body.slug}`, ["shape:r1"]],
    ["r/anon-room", ["shape:r1"]],
    [`r/${readonlyId}`, ["shape:r1"]],
  ];
  for (const [createSource, shapes] of sources) {
    const created = await api(server, "/app/files", {
      as: "alice",
      json: { name: `from ${createSource}`, createSource },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.file.createSource, createSource);
    assert.deepEqual(await fileDocument(server, created.body.file.id), {
      shapes,
      name: `from ${createSource}`,
    });
  }

  // The copy opens with the copied shapes, and is independent of its source.
  const copyId =
    (await api(server, "/app/files", { as: "alice", json: { createSource: "f/orig" } }))
      .body.file.id;
  await using copy = connectClient(`${server.wsUrl}/app/file/${copyId}?token=${aliceToken}`);
  await copy.loaded;
  await eventually(() => copy.store.has("shape:a1" as never));
  copy.store.remove(["shape:a1" as never]);
  await eventually(async () => (await fileDocument(server, copyId)).shapes.length === 1);
  assert.deepEqual((await fileDocument(server, "orig")).shapes, ["shape:a1", "shape:a2"]);
});

Deno.test(`${engine} createSource: sources the caller may not read are refused and create nothing`, async () => {
  await using server = await startAuthServer();
  await seedFiles(server, { secret: {}, open: { shared: true, sharedLinkType: "view" } });
  const aliceToken = await server.token("alice");
  await draw(server, `${server.wsUrl}/app/file/secret?token=${aliceToken}`, ["shape:s"]);
  await draw(server, `${server.wsUrl}/app/file/open?token=${aliceToken}`, ["shape:o"]);
  const filesBefore = await fileCount(server);

  await using bob = await server.connect("bob");
  await bob.initialData();
  const refusals: [string, string][] = [
    ["f/secret", "forbidden"],
    ["f/missing", "bad_request"],
    ["p/nothing-here", "bad_request"],
    ["s/nothing-here", "bad_request"],
    ["r/never-made", "bad_request"],
    ["x/whatever", "bad_request"],
    ["tldr", "bad_request"],
  ];
  for (const [createSource, code] of refusals) {
    const outcome = await bob.mutate(`m-${createSource}`, [{
      table: "file",
      event: "insert",
      row: fileRow(`b-${crypto.randomUUID()}`, "bob", { createSource }),
    }]);
    assert.equal(outcome.type, "reject", createSource);
    assert.equal(outcome.errorCode, code, createSource);
    const route = await api(server, "/app/files", { as: "bob", json: { createSource } });
    assert.equal(route.status, code === "forbidden" ? 403 : 400, createSource);
    assert.equal(route.body.error.details.reason, code);
  }
  assert.equal(await fileCount(server), filesBefore);
  // Nothing was written to any room either: only alice's two rooms exist.
  const rooms = new Set<string>();
  for await (const entry of server.deps.kv.list({ prefix: ["tldraw"] })) {
    rooms.add(String(entry.key[1]));
  }
  assert.deepEqual([...rooms].sort(), ["file:open", "file:secret"]);

  // A file shared with bob (even view-only) can be copied by him.
  const copied = await api(server, "/app/files", { as: "bob", json: { createSource: "f/open" } });
  assert.equal(copied.status, 201);
  assert.deepEqual((await fileDocument(server, copied.body.file.id)).shapes, ["shape:o"]);
  // Without a token: 401.
  assert.equal((await api(server, "/app/files", { json: {} })).status, 401);
});

Deno.test(`${engine} recovery: the owner restores a deleted file within the window; after it the file is gone`, async () => {
  const windowMs = 2_500;
  await using server = await startAuthServer({
    config: { content: { ...testConfig().content, fileRecoveryMs: windowMs } },
    content: { deletionPollMs: 100 },
  });
  await seedFiles(server, { keep: {}, lose: {} });
  const aliceToken = await server.token("alice");
  await draw(server, `${server.wsUrl}/app/file/keep?token=${aliceToken}`, ["shape:k"]);
  await draw(server, `${server.wsUrl}/app/file/lose?token=${aliceToken}`, ["shape:l"]);
  await using users = await server.users("alice", "bob");
  const { alice, bob } = users;

  for (const id of ["keep", "lose"]) {
    const deleted = await alice.mutate(`del-${id}`, [{
      table: "file",
      event: "update",
      row: { id, isDeleted: true, updatedAt: Date.now() },
    }]);
    assert.equal(deleted.type, "commit");
  }
  const listed = await api(server, "/app/files/deleted", { as: "alice" });
  assert.deepEqual(listed.body.files.map((f: { id: string }) => f.id).sort(), ["keep", "lose"]);
  assert.ok(
    listed.body.files.every((f: { purgeAt: number; deletedAt: number }) =>
      f.purgeAt - f.deletedAt === windowMs
    ),
  );
  assert.deepEqual((await api(server, "/app/files/deleted", { as: "bob" })).body.files, []);

  // Only the owner restores, and a deleted file takes no other change.
  const byBob = await bob.mutate("bob-restore", [{
    table: "file",
    event: "update",
    row: { id: "keep", isDeleted: false },
  }]);
  assert.equal(byBob.errorCode, "forbidden");
  assert.equal(
    (await api(server, "/app/file/keep/restore", { method: "POST", as: "bob" })).status,
    404,
  );
  const rename = await alice.mutate("rename-deleted", [{
    table: "file",
    event: "update",
    row: { id: "keep", name: "sneaky", isDeleted: false },
  }]);
  assert.equal(rename.errorCode, "forbidden");

  // Within the window: the owner restores "keep" (over HTTP) and its room is intact.
  await new Promise((resolve) => setTimeout(resolve, 600));
  const restored = await api(server, "/app/file/keep/restore", { method: "POST", as: "alice" });
  assert.equal(restored.status, 200);
  assert.equal(restored.body.file.isDeleted, false);
  await alice.nextUpdate((c) => c.table === "file" && c.row.id === "keep" && !c.row.isDeleted);
  await using reopened = connectClient(`${server.wsUrl}/app/file/keep?token=${aliceToken}`);
  await reopened.loaded;
  await eventually(() => reopened.store.has("shape:k" as never));

  // "lose" is still there until the window passes, then gone with its room data.
  const store = new KvRoomStore(server.deps.kv);
  assert.ok(await store.readClock("file:lose") >= 0);
  await eventually(
    async () =>
      (await server.deps.database.db.selectFrom("file").select("id").where("id", "=", "lose")
        .execute()).length === 0,
    windowMs + 5_000,
    "the hard delete after the window",
  );
  assert.equal(await store.readClock("file:lose"), -1);
  assert.equal(await store.readClock("file:keep") >= 0, true);
  assert.equal(
    (await api(server, "/app/file/lose/restore", { method: "POST", as: "alice" })).status,
    404,
  );

  // A file deleted again starts a new window (the restore took it off the queue).
  const again = await alice.mutate("del-again", [{
    table: "file",
    event: "update",
    row: { id: "keep", isDeleted: true },
  }]);
  assert.equal(again.type, "commit");
  const queued = await server.deps.database.db.selectFrom("file_deletion").selectAll()
    .where("fileId", "=", "keep").executeTakeFirstOrThrow();
  assert.ok(Date.now() - Number(queued.requestedAt) < 1_000);
});

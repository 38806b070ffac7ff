import assert from "node:assert/strict";
import { silentLogger } from "../../log.ts";
import { ChangeFeed, type FileChangeEvent } from "../../sync/user/change_feed.ts";
import { fileAccess } from "../../sync/user/data.ts";
import { openTestDatabase, TEST_ENGINE } from "../helpers/db.ts";
import {
  type AuthServer,
  eventually,
  fileRow,
  startAuthServer,
} from "../helpers/user_sync_client.ts";

const engine = `[${TEST_ENGINE}]`;

async function sql(server: AuthServer, text: string, params: unknown[] = []) {
  return await server.deps.database.rawTransaction((session) => session.query(text, params));
}

Deno.test(`${engine} concurrent mutations from two sockets of one user are serialised`, async () => {
  const applied: number[] = [];
  await using server = await startAuthServer({
    userData: { service: { onMutationApplied: (_user, number) => applied.push(number) } },
  });
  await using one = await server.connect("alice");
  await using two = await server.connect("alice");
  await one.initialData();
  await two.initialData();
  const ids = Array.from({ length: 10 }, (_, i) => i);
  for (const i of ids) {
    one.send({
      type: "mutate",
      mutationId: `a${i}`,
      updates: [{ table: "file", event: "insert", row: fileRow(`a${i}`, "alice") }],
    });
    two.send({
      type: "mutate",
      mutationId: `b${i}`,
      updates: [{ table: "file", event: "insert", row: fileRow(`b${i}`, "alice") }],
    });
    // Both write the same user row: the last one applied must be what everyone ends with.
    one.send({
      type: "mutate",
      mutationId: `an${i}`,
      updates: [{ table: "user", event: "update", row: { id: "alice", name: `one-${i}` } }],
    });
  }
  for (const i of ids) {
    assert.equal((await one.outcome(`a${i}`)).type, "commit");
    assert.equal((await two.outcome(`b${i}`)).type, "commit");
    assert.equal((await one.outcome(`an${i}`)).type, "commit");
  }
  assert.deepEqual(
    applied,
    Array.from({ length: 30 }, (_, i) => i + 1),
    "strictly increasing, no gaps",
  );
  // Commits come back in the order each socket sent its mutations.
  const commits = one.messages.filter((m) => m.type === "commit").map((m) =>
    (m.mutationIds as string[])[0]
  );
  assert.deepEqual(commits, ids.flatMap((i) => [`a${i}`, `an${i}`]));
  const [{ count }] = await sql(server, `SELECT count(*)::INT AS "count" FROM "file"`) as [
    { count: number },
  ];
  assert.equal(count, 20);
  // Both sockets converge on all 20 files and the final name.
  for (const client of [one, two]) {
    await eventually(
      () => client.updates().filter((u) => u.table === "file").length === 20,
      3_000,
      "20 files",
    );
    const names = client.updates().filter((u) => u.table === "user").map((u) => u.row.name);
    assert.equal(names.at(-1), "one-9");
  }
});

Deno.test(`${engine} a guest sees the owner's rename, and loses the file on unshare`, async () => {
  await using server = await startAuthServer();
  await using users = await server.users("alice", "bob");
  const { alice, bob } = users;
  await alice.mutate("m1", [{
    table: "file",
    event: "insert",
    row: fileRow("shared", "alice", { shared: true }),
  }]);
  assert.equal(bob.updates().length, 0, "not bob's file yet");
  // Opening the shared file makes it a guest file: the file row comes first, then the state.
  assert.equal(
    (await bob.mutate("b1", [{
      table: "file_state",
      event: "insert",
      row: { userId: "bob", fileId: "shared" },
    }])).type,
    "commit",
  );
  assert.deepEqual(bob.updates().map((u) => `${u.table}:${u.event}`), [
    "file:insert",
    "file_state:insert",
  ]);
  // Alice does not receive bob's file state.
  assert.ok(!alice.updates().some((u) => u.table === "file_state"));

  await alice.mutate("m2", [{
    table: "file",
    event: "update",
    row: { id: "shared", name: "Renamed" },
  }]);
  await bob.nextUpdate((u) =>
    u.table === "file" && u.event === "update" && u.row.name === "Renamed"
  );
  // A guest's forbidden write is rejected to bob only.
  const rejected = await bob.mutate("b2", [{
    table: "file",
    event: "update",
    row: { id: "shared", name: "Mine" },
  }]);
  assert.equal(rejected.errorCode, "forbidden");
  assert.ok(!alice.messages.some((m) => m.type === "reject"));

  await alice.mutate("m3", [{
    table: "file",
    event: "update",
    row: { id: "shared", shared: false },
  }]);
  await bob.nextUpdate((u) => u.table === "file" && u.event === "delete" && u.row.id === "shared");
  assert.ok(bob.updates().some((u) => u.table === "file_state" && u.event === "delete"));
  await alice.nextUpdate((u) => u.table === "file" && u.row.shared === false);
  // Bob's data no longer holds the file; his file state went with it.
  await using bobAgain = await server.connect("bob");
  const initial = await bobAgain.initialData();
  assert.deepEqual(initial.initialData.files, []);
  assert.deepEqual(initial.initialData.fileStates, []);
  // And bob cannot re-open it.
  const reopen = await bob.mutate("b3", [{
    table: "file_state",
    event: "insert",
    row: { userId: "bob", fileId: "shared" },
  }]);
  assert.equal(reopen.errorCode, "forbidden");
});

Deno.test(`${engine} a deleted file leaves owner's and guests' data`, async () => {
  await using server = await startAuthServer();
  await using users = await server.users("alice", "bob");
  const { alice, bob } = users;
  await alice.mutate("m1", [{
    table: "file",
    event: "insert",
    row: fileRow("f", "alice", { shared: true }),
  }]);
  await bob.mutate("b1", [{
    table: "file_state",
    event: "insert",
    row: { userId: "bob", fileId: "f" },
  }]);
  await alice.mutate("m2", [{ table: "file", event: "delete", row: { id: "f" } }]);
  await bob.nextUpdate((u) => u.table === "file" && u.event === "delete");
  await alice.nextUpdate((u) => u.table === "file" && u.event === "delete");
  assert.deepEqual(bob.updates().find((u) => u.table === "file" && u.event === "delete")?.row, {
    id: "f",
  });
});

Deno.test(`${engine} a direct SQL update reaches open sockets within a second`, async () => {
  await using server = await startAuthServer();
  await using users = await server.users("alice", "bob");
  const { alice, bob } = users;
  await alice.mutate("m1", [{
    table: "file",
    event: "insert",
    row: fileRow("f", "alice", { shared: true }),
  }]);
  await bob.mutate("b1", [{
    table: "file_state",
    event: "insert",
    row: { userId: "bob", fileId: "f" },
  }]);
  const started = Date.now();
  await sql(server, `UPDATE "file" SET "name" = 'from sql' WHERE "id" = 'f'`);
  await alice.nextUpdate((u) => u.row.name === "from sql", 1_500);
  await bob.nextUpdate((u) => u.row.name === "from sql", 1_500);
  assert.ok(Date.now() - started < 1_000, `took ${Date.now() - started} ms`);
  // A user row changed in SQL reaches its user too.
  await sql(server, `UPDATE "user" SET "color" = 'red' WHERE "id" = 'bob'`);
  await bob.nextUpdate((u) => u.table === "user" && u.row.color === "red", 1_500);
});

Deno.test(`${engine} a missed NOTIFY is recovered by the catch-up timer`, async () => {
  let dropped = 0;
  await using server = await startAuthServer({
    userData: {
      service: {
        feed: {
          pollIntervalMs: 250,
          acceptNotification: () => {
            dropped++;
            return false;
          },
        },
      },
    },
  });
  await using alice = await server.connect("alice");
  await alice.initialData();
  await sql(server, `UPDATE "user" SET "name" = 'changed' WHERE "id" = 'alice'`);
  await alice.nextUpdate((u) => u.table === "user" && u.row.name === "changed", 2_000);
  assert.ok(dropped > 0, "the notification was dropped");
});

Deno.test(`${engine} two servers on one database (two isolates): mutations serialise and fan out across`, async () => {
  await using database = await openTestDatabase();
  const kv = await Deno.openKv(":memory:");
  try {
    const applied: number[] = [];
    const userData = {
      service: {
        onMutationApplied: (_u: string, n: number) => applied.push(n),
        feed: { pollIntervalMs: 200 },
      },
    };
    await using a = await startAuthServer({ database, kv, userData });
    await using b = await startAuthServer({ database, kv, userData });
    await using onA = await a.connect("alice");
    // A token from isolate A's dev key works on isolate B (shared KV).
    await using onB = await b.connect("alice", { token: await a.token("alice") });
    await onA.initialData();
    await onB.initialData();
    for (let i = 0; i < 5; i++) {
      onA.send({
        type: "mutate",
        mutationId: `a${i}`,
        updates: [{ table: "file", event: "insert", row: fileRow(`a${i}`, "alice") }],
      });
      onB.send({
        type: "mutate",
        mutationId: `b${i}`,
        updates: [{ table: "file", event: "insert", row: fileRow(`b${i}`, "alice") }],
      });
    }
    for (let i = 0; i < 5; i++) {
      assert.equal((await onA.outcome(`a${i}`)).type, "commit");
      assert.equal((await onB.outcome(`b${i}`)).type, "commit");
    }
    assert.deepEqual(
      [...applied].sort((x, y) => x - y),
      Array.from({ length: 10 }, (_, i) => i + 1),
    );
    for (const client of [onA, onB]) {
      await eventually(
        () =>
          new Set(client.updates().filter((u) => u.table === "file").map((u) => u.row.id)).size ===
            10,
        3_000,
        "all files on both isolates",
      );
      const fileIds = client.updates().filter((u) => u.table === "file").map((u) => u.row.id);
      assert.equal(fileIds.length, 10, "no duplicates");
    }
  } finally {
    kv.close();
  }
});

Deno.test(`${engine} file events and admission for the room side`, async () => {
  await using server = await startAuthServer();
  const feed = new ChangeFeed(server.deps.database, silentLogger, { pollIntervalMs: 100 });
  const events: FileChangeEvent[] = [];
  feed.onFileChanged((event) => events.push(event));
  try {
    await feed.ready();
    await using alice = await server.connect("alice");
    await alice.initialData();
    await alice.mutate("m1", [{ table: "file", event: "insert", row: fileRow("f", "alice") }]);
    const database = server.deps.database;
    const alicId = { userId: "alice" };
    const bobId = { userId: "bob" };
    assert.deepEqual(await fileAccess(database, "nope", alicId), { kind: "not_found" });
    assert.equal((await fileAccess(database, "f", alicId)).kind, "ok");
    assert.deepEqual(await fileAccess(database, "f", bobId), { kind: "forbidden" });
    assert.deepEqual(await fileAccess(database, "f", undefined), { kind: "not_authenticated" });
    await alice.mutate("m2", [{
      table: "file",
      event: "update",
      row: { id: "f", shared: true, sharedLinkType: "view" },
    }]);
    const view = await fileAccess(database, "f", bobId);
    assert.ok(view.kind === "ok" && view.readonly && !view.isOwner);
    const anonymous = await fileAccess(database, "f", undefined);
    assert.ok(anonymous.kind === "ok" && anonymous.readonly);
    const owner = await fileAccess(database, "f", alicId);
    assert.ok(owner.kind === "ok" && !owner.readonly && owner.isOwner);
    await alice.mutate("m3", [{
      table: "file",
      event: "update",
      row: { id: "f", sharedLinkType: "edit" },
    }]);
    const edit = await fileAccess(database, "f", bobId);
    assert.ok(edit.kind === "ok" && !edit.readonly);
    await alice.mutate("m4", [{
      table: "file",
      event: "update",
      row: { id: "f", isDeleted: true },
    }]);
    assert.deepEqual(await fileAccess(database, "f", alicId), { kind: "not_found" });
    await sql(server, `DELETE FROM "file" WHERE "id" = 'f'`);
    await eventually(() => events.length === 5, 3_000, "5 file events");
    assert.deepEqual(events.map((e) => e.kind), [
      "created",
      "updated",
      "updated",
      "updated",
      "deleted",
    ]);
    const second = events[1]!;
    assert.ok(second.kind === "updated" && !second.before.shared && second.after.shared);
  } finally {
    await feed.stop();
  }
});

Deno.test(`${engine} REST: /app/files lists own and guest files; /app/file/:id/meta follows the admission rules`, async () => {
  await using server = await startAuthServer();
  await using users = await server.users("alice", "bob");
  const { alice, bob } = users;
  await alice.mutate("m1", [
    { table: "file", event: "insert", row: fileRow("mine", "alice") },
    { table: "file", event: "insert", row: fileRow("gone", "alice", { isDeleted: true }) },
  ]);
  await bob.mutate("b1", [{
    table: "file",
    event: "insert",
    row: fileRow("bobs", "bob", { shared: true, sharedLinkType: "view" }),
  }]);
  await alice.mutate("m2", [{
    table: "file_state",
    event: "insert",
    row: { userId: "alice", fileId: "bobs" },
  }]);
  const aliceToken = await server.token("alice");
  const get = async (path: string, token?: string) => {
    const response = await fetch(
      `${server.url}${path}`,
      token ? { headers: { Authorization: `Bearer ${token}` } } : {},
    );
    return { status: response.status, body: await response.json() };
  };
  const list = await get("/app/files", aliceToken);
  assert.equal(list.status, 200);
  assert.deepEqual(list.body.files.map((f: { id: string }) => f.id).sort(), ["bobs", "mine"]);
  assert.equal((await get("/app/files")).status, 401);

  const own = await get("/app/file/mine/meta", aliceToken);
  assert.equal(own.status, 200);
  assert.equal(own.body.isOwner, true);
  assert.equal(own.body.readonly, false);
  const guest = await get("/app/file/bobs/meta", aliceToken);
  assert.equal(guest.body.readonly, true);
  assert.equal(
    (await get("/app/file/bobs/meta")).status,
    200,
    "shared files are visible anonymously",
  );
  assert.equal((await get("/app/file/mine/meta", await server.token("bob"))).status, 403);
  assert.equal((await get("/app/file/mine/meta")).status, 401);
  assert.equal((await get("/app/file/gone/meta", aliceToken)).status, 404);
  assert.equal((await get("/app/file/none/meta", aliceToken)).status, 404);
  assert.equal((await get("/app/file/mine/meta", "bad-token")).status, 401);
});

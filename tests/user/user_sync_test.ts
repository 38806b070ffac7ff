import assert from "node:assert/strict";
import { TEST_ENGINE } from "../helpers/db.ts";
import { type AuthServer, fileRow, startAuthServer } from "../helpers/user_sync_client.ts";

const engine = `[${TEST_ENGINE}]`;

async function sql(server: AuthServer, text: string, params: unknown[] = []) {
  return await server.deps.database.rawTransaction((session) => session.query(text, params));
}

async function fileById(server: AuthServer, id: string) {
  const rows = await sql(server, `SELECT * FROM "file" WHERE "id" = $1`, [id]);
  return rows[0] as Record<string, unknown> | undefined;
}

Deno.test(`${engine} connect: initial_data creates the user from token claims; ping answers pong`, async () => {
  await using server = await startAuthServer();
  await using alice = await server.connect("alice", {
    token: await server.token("alice", { name: "Alice", email: "alice@example.com" }),
  });
  const initial = await alice.initialData();
  assert.equal(initial.mutationNumber, 0);
  assert.equal(initial.initialData.user.id, "alice");
  assert.equal(initial.initialData.user.name, "Alice");
  assert.equal(initial.initialData.user.email, "alice@example.com");
  assert.deepEqual(initial.initialData.files, []);
  assert.deepEqual(initial.initialData.fileStates, []);
  alice.send({ type: "ping" });
  await alice.next((m) => m.type === "pong");
  // The user row was created once; a second connection sees the same row and no duplicate.
  await using again = await server.connect("alice");
  assert.equal((await again.initialData()).initialData.user.name, "Alice");
});

Deno.test(`${engine} connect: protocol version gate (missing counts as 1) and sessionId required`, async () => {
  await using server = await startAuthServer();
  for (const protocolVersion of [null, 1, 3]) {
    await using client = await server.connect("alice", { protocolVersion });
    assert.deepEqual(await client.closed, { code: 4099, reason: "CLIENT_TOO_OLD" });
  }
  const token = await server.token("alice");
  const noSession = await fetch(`${server.url}/app/alice/connect?protocolVersion=2`, {
    headers: { Authorization: `Bearer ${token}`, Upgrade: "websocket" },
  });
  assert.equal(noSession.status, 400);
  await noSession.body?.cancel();
  const notUpgrade = await fetch(`${server.url}/app/alice/connect?sessionId=s&protocolVersion=2`, {
    headers: { Authorization: `Bearer ${token}` },
  });
  assert.equal(notUpgrade.status, 400);
  await notUpgrade.body?.cancel();
});

Deno.test(`${engine} rate limits: RATE_LIMITED at connect, rate_limit_exceeded per mutation`, async () => {
  await using server = await startAuthServer({
    userData: {
      service: {
        connectRate: { limit: 2, windowMs: 60_000 },
        mutationRate: { limit: 2, windowMs: 60_000 },
      },
    },
  });
  await using first = await server.connect("alice");
  await first.initialData();
  await using second = await server.connect("alice");
  await second.initialData();
  await using third = await server.connect("alice");
  assert.deepEqual(await third.closed, { code: 4099, reason: "RATE_LIMITED" });
  // Another user has their own budget.
  await using bob = await server.connect("bob");
  await bob.initialData();

  assert.equal(
    (await first.mutate("m1", [{ table: "file", event: "insert", row: fileRow("f1", "alice") }]))
      .type,
    "commit",
  );
  assert.equal(
    (await second.mutate("m2", [{ table: "file", event: "insert", row: fileRow("f2", "alice") }]))
      .type,
    "commit",
  );
  const limited = await first.mutate("m3", [{
    table: "file",
    event: "insert",
    row: fileRow("f3", "alice"),
  }]);
  assert.deepEqual(limited, { type: "reject", mutationId: "m3", errorCode: "rate_limit_exceeded" });
  assert.equal(await fileById(server, "f3"), undefined);
});

Deno.test(`${engine} mutate: updates reach every socket of the user before the sender's commit`, async () => {
  await using server = await startAuthServer();
  await using one = await server.connect("alice");
  await using two = await server.connect("alice");
  await one.initialData();
  await two.initialData();
  const result = await one.mutate("m1", [
    { table: "file", event: "insert", row: fileRow("f1", "alice") },
    {
      table: "file_state",
      event: "insert",
      row: { userId: "alice", fileId: "f1", isFileOwner: true },
    },
  ]);
  assert.deepEqual(result, { type: "commit", mutationIds: ["m1"] });
  const commitIndex = one.messages.indexOf(result);
  const updateIndex = one.messages.findIndex((m) => m.type === "update");
  assert.ok(updateIndex >= 0 && updateIndex < commitIndex, "update before commit");
  assert.deepEqual(one.updates().map((u) => `${u.table}:${u.event}`), [
    "file:insert",
    "file_state:insert",
  ]);
  await two.nextUpdate((u) => u.table === "file_state");
  assert.ok(!two.messages.some((m) => m.type === "commit"), "commit only to the sender");
  const [{ mutationNumber }] = await sql(
    server,
    `SELECT "mutationNumber" FROM "user_mutation_number" WHERE "userId" = 'alice'`,
  ) as [{ mutationNumber: number }];
  assert.equal(Number(mutationNumber), 1);
  // Reconnecting: the initial data holds the file, the state and the mutation number.
  await using three = await server.connect("alice");
  const initial = await three.initialData();
  assert.equal(initial.mutationNumber, 1);
  assert.deepEqual(initial.initialData.files.map((f) => f.id), ["f1"]);
  assert.deepEqual(initial.initialData.fileStates.map((f) => f.fileId), ["f1"]);
});

Deno.test(`${engine} mutate: transient connection errors are retried; unexpected errors reject unknown_error`, async () => {
  let mode: "ok" | "transient" | "broken" = "ok";
  const attempts: number[] = [];
  await using server = await startAuthServer({
    userData: {
      service: {
        mutation: {
          retryDelayMs: 1,
          beforeAttempt: (attempt) => {
            attempts.push(attempt);
            if (mode === "transient" && attempt < 3) {
              throw Object.assign(new Error("connection lost"), { code: "08006" });
            }
            if (mode === "broken") throw new Error("boom");
          },
        },
      },
    },
  });
  await using alice = await server.connect("alice");
  await alice.initialData();
  mode = "transient";
  assert.equal(
    (await alice.mutate("m1", [{ table: "file", event: "insert", row: fileRow("f1", "alice") }]))
      .type,
    "commit",
  );
  assert.deepEqual(attempts, [1, 2, 3]);
  assert.equal(alice.updates().filter((u) => u.table === "file").length, 1, "applied once");
  mode = "broken";
  const failed = await alice.mutate("m2", [{
    table: "file",
    event: "insert",
    row: fileRow("f2", "alice"),
  }]);
  assert.deepEqual(failed, { type: "reject", mutationId: "m2", errorCode: "unknown_error" });
  mode = "ok";
  assert.equal(
    (await alice.mutate("m3", [{ table: "file", event: "insert", row: fileRow("f3", "alice") }]))
      .type,
    "commit",
  );
});

Deno.test(`${engine} malformed messages close only that socket with 4099 BAD_REQUEST`, async () => {
  await using server = await startAuthServer();
  await using healthy = await server.connect("alice");
  await healthy.initialData();
  for (
    const bad of ["{not json", JSON.stringify({ type: "launch_missiles" }), JSON.stringify([1, 2])]
  ) {
    await using client = await server.connect("alice");
    await client.initialData();
    client.send(bad);
    assert.deepEqual(await client.closed, { code: 4099, reason: "BAD_REQUEST" });
  }
  {
    await using binary = await server.connect("alice");
    await binary.initialData();
    binary.socket.send(new Uint8Array([1, 2, 3]));
    assert.deepEqual(await binary.closed, { code: 4099, reason: "BAD_REQUEST" });
  }
  // A mutate with a bad body is answered with reject, and the socket stays usable.
  await using sloppy = await server.connect("alice");
  await sloppy.initialData();
  sloppy.send({ type: "mutate", mutationId: "x1", updates: "nope" });
  assert.deepEqual(await sloppy.outcome("x1"), {
    type: "reject",
    mutationId: "x1",
    errorCode: "bad_request",
  });
  // The other socket of the same user is undisturbed.
  healthy.send({ type: "ping" });
  await healthy.next((m) => m.type === "pong");
  assert.equal(
    (await healthy.mutate("ok", [{ table: "file", event: "insert", row: fileRow("f1", "alice") }]))
      .type,
    "commit",
  );
});

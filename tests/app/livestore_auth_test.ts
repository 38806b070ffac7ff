/**
 * The app's default LiveStore hooks: a JWT gets the per-store rule tied to our users; `user:` and
 * `file:` stores always need one; other stores take the shared token, or anyone when configured.
 */
import assert from "node:assert/strict";
import { testConfig } from "../../config.ts";
import { event, livestoreQuery, RawLivestoreSocket } from "../helpers/livestore_socket.ts";
import { type AuthServer, startAuthServer } from "../helpers/user_sync_client.ts";
import { TEST_ENGINE } from "../helpers/db.ts";

const engine = `[${TEST_ENGINE}]`;

/** The status of a WebSocket upgrade to `storeId` with `payload` (101: connected). */
async function upgradeStatus(server: AuthServer, storeId: string, payload: unknown) {
  const response = await fetch(`${server.url}/livestore?${livestoreQuery(storeId, payload)}`, {
    headers: {
      upgrade: "websocket",
      connection: "upgrade",
      "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
      "sec-websocket-version": "13",
    },
  });
  await response.body?.cancel();
  return response.status;
}

async function seedUsers(server: AuthServer) {
  const now = Date.now();
  const { db } = server.deps.database;
  await db.insertInto("user").values(["alice", "bob"].map((id) => ({
    id,
    name: id,
    email: `${id}@x.test`,
    createdAt: now,
    updatedAt: now,
  }))).execute();
  await db.insertInto("file").values({
    id: "f1",
    name: "F",
    ownerId: "alice",
    shared: true,
    sharedLinkType: "edit",
    publishedSlug: "s1",
    createdAt: now,
    updatedAt: now,
  }).execute();
}

function livestoreConfig(settings: { authToken?: string; anonymous?: boolean }) {
  return {
    config: {
      livestore: { ...testConfig().livestore, authToken: undefined, anonymous: false, ...settings },
    },
  };
}

Deno.test(`${engine} LiveStore: user: and file: stores always need a JWT, whatever the server allows`, async () => {
  const secret = "a-shared-token-of-16+";
  for (
    const [label, settings, payload] of [
      ["default (nothing configured)", {}, undefined],
      ["anonymous allowed", { anonymous: true }, undefined],
      ["shared token, sent", { authToken: secret }, { authToken: secret }],
    ] as const
  ) {
    await using server = await startAuthServer(livestoreConfig(settings));
    await seedUsers(server);
    const alice = await server.token("alice");
    for (const storeId of ["user:alice", "user:alice:notes", "file:f1"]) {
      assert.equal(await upgradeStatus(server, storeId, payload), 400, `${label}: ${storeId}`);
      assert.equal(
        await upgradeStatus(server, storeId, { ...(payload ?? {}), jwt: alice }),
        101,
        `${label}, with alice's JWT: ${storeId}`,
      );
    }
    // Other stores: only what the server allows.
    const allowsOthers = label !== "default (nothing configured)";
    assert.equal(await upgradeStatus(server, "notes", payload), allowsOthers ? 101 : 400, label);
  }
  // A wrong or missing shared token is refused for other stores.
  await using tokenServer = await startAuthServer(livestoreConfig({ authToken: secret }));
  assert.equal(await upgradeStatus(tokenServer, "notes", undefined), 400);
  assert.equal(
    await upgradeStatus(tokenServer, "notes", { authToken: "wrong-token-xxxxxxxx" }),
    400,
  );
});

Deno.test(`${engine} LiveStore: without a JWT, nobody pulls or pushes another user's events`, async () => {
  await using server = await startAuthServer(livestoreConfig({ anonymous: true }));
  await seedUsers(server);
  // Alice writes to her store with her JWT.
  const alice = await server.token("alice");
  const url = `${server.wsUrl}/livestore`;
  {
    await using own = await RawLivestoreSocket.open(url, "user:alice", { jwt: alice });
    const exit = await own.exit(own.push("user:alice", [event(1, "alice-client")]));
    assert.deepEqual(exit.exit, { _tag: "Success", value: {} });
  }
  // An anonymous client cannot even connect to it, or to a file store.
  for (const storeId of ["user:alice", "file:f1"]) {
    await assert.rejects(RawLivestoreSocket.open(url, storeId), Error, storeId);
  }
  const events = await server.deps.database.db.selectFrom("livestore_event").select("clientId")
    .execute();
  assert.deepEqual(events.map((e) => e.clientId), ["alice-client"]);
});

Deno.test(`${engine} LiveStore with a JWT: own user stores and permitted file stores only`, async () => {
  await using server = await startAuthServer();
  const now = Date.now();
  const { db } = server.deps.database;
  await db.insertInto("user").values(
    ["alice", "bob"].map((id) => ({
      id,
      name: id,
      email: `${id}@x.test`,
      createdAt: now,
      updatedAt: now,
    })),
  ).execute();
  await db.insertInto("file").values({
    id: "f1",
    name: "F",
    ownerId: "alice",
    publishedSlug: "s1",
    createdAt: now,
    updatedAt: now,
  }).execute();
  const alice = await server.token("alice");
  const bob = await server.token("bob");
  const status = (storeId: string, payload: unknown) => upgradeStatus(server, storeId, payload);
  assert.equal(await status("user:alice", { jwt: alice }), 101);
  assert.equal(await status("user:alice:notes", { jwt: alice }), 101);
  assert.equal(await status("user:alice", { jwt: bob }), 400);
  assert.equal(await status("user:alice", { jwt: "not-a-token" }), 400);
  assert.equal(await status("file:f1", { jwt: alice }), 101);
  assert.equal(await status("file:f1", { jwt: bob }), 400); // private file
  await db.updateTable("file").set({ shared: true }).where("id", "=", "f1").execute();
  assert.equal(await status("file:f1", { jwt: bob }), 101);
});

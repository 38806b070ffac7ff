/** The app's default LiveStore hooks: a JWT gets the per-store rule tied to our users. */
import assert from "node:assert/strict";
import { livestoreQuery } from "../helpers/livestore_socket.ts";
import { startAuthServer } from "../helpers/user_sync_client.ts";
import { TEST_ENGINE } from "../helpers/db.ts";

const engine = `[${TEST_ENGINE}]`;

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
  const status = async (storeId: string, payload: unknown) => {
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
  };
  assert.equal(await status("user:alice", { jwt: alice }), 101);
  assert.equal(await status("user:alice:notes", { jwt: alice }), 101);
  assert.equal(await status("user:alice", { jwt: bob }), 400);
  assert.equal(await status("user:alice", { jwt: "not-a-token" }), 400);
  assert.equal(await status("file:f1", { jwt: alice }), 101);
  assert.equal(await status("file:f1", { jwt: bob }), 400); // private file
  await db.updateTable("file").set({ shared: true }).where("id", "=", "f1").execute();
  assert.equal(await status("file:f1", { jwt: bob }), 101);
});

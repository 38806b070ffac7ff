/** Per-store access for our users (jwtAccessHooks + defaultStoreAccess), through the WebSocket transport. */
import assert from "node:assert/strict";
import { jwtAccessHooks, tokenAuthHooks } from "../sync/livestore/hooks.ts";
import { defaultStoreAccess } from "../sync/livestore/store_access.ts";
import {
  event,
  livestoreQuery,
  RawLivestoreSocket,
  serveLivestore,
} from "./helpers/livestore_socket.ts";
import { startTestServer, type TestServer } from "./helpers/server.ts";

// @tldraw/utils (imported by the app) schedules a 100 ms timer when first imported; let it fire before
// the first test so the op sanitizer does not attribute it to that test.
await new Promise((resolve) => setTimeout(resolve, 150));

/** A stand-in verifier: `valid:<userId>` is a good token, anything else is not. */
const verify = (token: string) => {
  if (!token.startsWith("valid:")) return Promise.reject(new Error("bad token"));
  return Promise.resolve({ userId: token.slice("valid:".length) });
};

async function setup(server: TestServer) {
  const now = Date.now();
  await server.deps.database.db.insertInto("user").values(
    ["alice", "bob"].map((id) => ({
      id,
      name: id,
      email: `${id}@example.com`,
      createdAt: now,
      updatedAt: now,
    })),
  ).execute();
  await server.deps.database.db.insertInto("file").values({
    id: "f1",
    name: "shared doc",
    ownerId: "alice",
    shared: true,
    sharedLinkType: "view",
    publishedSlug: "f1-slug",
    createdAt: now,
    updatedAt: now,
  }).execute();
  return await serveLivestore(server.deps, {
    hooks: jwtAccessHooks({
      verify,
      canAccess: defaultStoreAccess(server.deps.database),
      withoutJwt: tokenAuthHooks("shared-secret"),
    }),
  });
}

async function status(httpUrl: string, storeId: string, payload: unknown): Promise<number> {
  const response = await fetch(`${httpUrl}?${livestoreQuery(storeId, payload)}`, {
    headers: { upgrade: "websocket" },
  });
  await response.body?.cancel();
  return response.status;
}

Deno.test("connect: a user's own stores only, a valid JWT, or the shared token", async () => {
  await using server = await startTestServer();
  await using livestore = await setup(server);
  assert.equal(await status(livestore.httpUrl, "user:bob", { jwt: "valid:alice" }), 400);
  assert.equal(await status(livestore.httpUrl, "user:alice", { jwt: "forged" }), 400);
  assert.equal(await status(livestore.httpUrl, "user:alice", { authToken: "nope" }), 400);
  assert.equal(await status(livestore.httpUrl, "elsewhere", { jwt: "valid:alice" }), 400);
  assert.equal(await status(livestore.httpUrl, "file:missing", { jwt: "valid:alice" }), 400);

  await using own = await RawLivestoreSocket.open(livestore.wsUrl, "user:alice:todos", {
    jwt: "valid:alice",
  });
  assert.deepEqual((await own.exit(own.push("user:alice:todos", [event(1)]))).exit, {
    _tag: "Success",
    value: {},
  });
  await using shared = await RawLivestoreSocket.open(livestore.wsUrl, "anything", {
    authToken: "shared-secret",
  });
  await shared.exit(shared.pull("anything"));
});

Deno.test("file stores follow the file row: view link reads, owner writes, unsharing revokes", async () => {
  await using server = await startTestServer();
  await using livestore = await setup(server);
  await using owner = await RawLivestoreSocket.open(livestore.wsUrl, "file:f1", {
    jwt: "valid:alice",
  });
  await using guest = await RawLivestoreSocket.open(livestore.wsUrl, "file:f1", {
    jwt: "valid:bob",
  });
  assert.equal((await owner.exit(owner.push("file:f1", [event(1)]))).exit._tag, "Success");
  const pull = guest.pull("file:f1");
  assert.equal((await guest.chunk(pull)).batch.length, 1);
  await guest.exit(pull);
  const denied = await guest.exit(guest.push("file:f1", [event(2)]));
  assert.equal(denied.exit.cause.error._tag, "UnknownError");

  await server.deps.database.db.updateTable("file").set({ shared: false }).where("id", "=", "f1")
    .execute();
  const revoked = await guest.exit(guest.pull("file:f1"));
  assert.equal(revoked.exit.cause.error._tag, "UnknownError");
  assert.equal((await owner.exit(owner.push("file:f1", [event(2)]))).exit._tag, "Success");
});

/**
 * `/app/file/:fileId`: the file's room through the same engine, admitted by the file row, following
 * the row while sessions are open. Real tldraw clients, real dev-issued JWTs, real database.
 */
import assert from "node:assert/strict";
import { connectClient, documentRecords } from "../helpers/tldraw_client.ts";
import { connectRaw, geoShape, openRaw } from "../helpers/raw_socket.ts";
import { type AuthServer, eventually, startAuthServer } from "../helpers/user_sync_client.ts";
import { TEST_ENGINE } from "../helpers/db.ts";

const engine = `[${TEST_ENGINE}]`;
const now = Date.now();

async function seed(server: AuthServer) {
  const { db } = server.deps.database;
  await db.insertInto("user").values(
    ["alice", "bob"].map((id) => ({
      id,
      name: id,
      email: `${id}@example.com`,
      createdAt: now,
      updatedAt: now,
    })),
  ).execute();
  const file = (id: string, extra: Record<string, unknown> = {}) => ({
    id,
    name: `File ${id}`,
    ownerId: "alice",
    publishedSlug: `slug-${id}`,
    createdAt: now,
    updatedAt: now,
    ...extra,
  });
  await db.insertInto("file").values([
    file("private"),
    file("viewable", { shared: true, sharedLinkType: "view" }),
    file("editable", { shared: true, sharedLinkType: "edit" }),
    file("gone", { shared: true, isDeleted: true }),
  ]).execute();
}

async function url(server: AuthServer, fileId: string, userId?: string) {
  const token = userId ? `?token=${encodeURIComponent(await server.token(userId))}` : "";
  return `${server.wsUrl}/app/file/${fileId}${token}`;
}

async function closeReason(server: AuthServer, fileId: string, userId?: string, extra = "") {
  const socket = await openRaw((await url(server, fileId, userId)) + extra);
  socket.send({ type: "connect", connectRequestId: "x", lastServerClock: -1, protocolVersion: 8 });
  return await socket.closed;
}

Deno.test(`${engine} file rooms: admission follows the file row`, async () => {
  await using server = await startAuthServer();
  await seed(server);
  assert.deepEqual(await closeReason(server, "private"), {
    code: 4099,
    reason: "NOT_AUTHENTICATED",
  });
  assert.deepEqual(await closeReason(server, "private", "bob"), {
    code: 4099,
    reason: "FORBIDDEN",
  });
  assert.deepEqual(await closeReason(server, "gone", "alice"), { code: 4099, reason: "NOT_FOUND" });
  assert.deepEqual(await closeReason(server, "missing", "alice"), {
    code: 4099,
    reason: "NOT_FOUND",
  });
  assert.deepEqual(await closeReason(server, "bad$id", "alice"), {
    code: 4099,
    reason: "NOT_FOUND",
  });
  const forged = await openRaw(`${server.wsUrl}/app/file/private?token=not.a.jwt`);
  assert.deepEqual(await forged.closed, { code: 4099, reason: "NOT_AUTHENTICATED" });

  const cases: [string, string | undefined, boolean][] = [
    ["private", "alice", false], // the owner always writes
    ["viewable", "alice", false],
    ["viewable", "bob", true], // link type view: read-only for others
    ["viewable", undefined, true], // anonymous visitors of a shared file
    ["editable", "bob", false],
  ];
  for (const [fileId, userId, readonly] of cases) {
    const { socket, reply } = await connectRaw(await url(server, fileId, userId));
    assert.equal(reply.isReadonly, readonly, `${fileId} as ${userId ?? "anonymous"}`);
    await socket.close();
  }
});

Deno.test(`${engine} file rooms: the per-user join rate limit closes with RATE_LIMITED`, async () => {
  await using server = await startAuthServer({
    fileRooms: { joinRate: { limit: 2, windowMs: 60_000 } },
  });
  await seed(server);
  for (let i = 0; i < 2; i++) {
    const { socket } = await connectRaw(await url(server, "editable", "bob"));
    await socket.close();
  }
  assert.deepEqual(await closeReason(server, "editable", "bob"), {
    code: 4099,
    reason: "RATE_LIMITED",
  });
});

Deno.test(`${engine} file rooms: real clients collaborate; the /r/ routes cannot reach a file room`, async () => {
  await using server = await startAuthServer();
  await seed(server);
  await using owner = connectClient(await url(server, "editable", "alice"));
  await using guest = connectClient(await url(server, "editable", "bob"));
  await Promise.all([owner.loaded, guest.loaded]);
  owner.store.put([geoShape("shape:from-owner") as never]);
  guest.store.put([geoShape("shape:from-guest", { x: 50 }) as never]);
  await eventually(() =>
    JSON.stringify(documentRecords(owner.store)) === JSON.stringify(documentRecords(guest.store)) &&
    owner.store.has("shape:from-guest" as never) && guest.store.has("shape:from-owner" as never)
  );
  // The anonymous room routes use another id space.
  const { socket, reply } = await connectRaw(`${server.wsUrl}/r/editable`);
  assert.equal(reply.diff["shape:from-owner"], undefined);
  await socket.close();
});

Deno.test(`${engine} file rooms: unshare closes guests with FORBIDDEN, the owner stays`, async () => {
  await using server = await startAuthServer();
  await seed(server);
  await using owner = connectClient(await url(server, "editable", "alice"));
  await using guest = connectClient(await url(server, "editable", "bob"));
  await Promise.all([owner.loaded, guest.loaded]);
  await server.deps.database.db.updateTable("file").set({ shared: false }).where(
    "id",
    "=",
    "editable",
  )
    .execute();
  await eventually(() => guest.errors.includes("FORBIDDEN"), 5_000);
  // The owner's session is undisturbed: its next change is committed and stored.
  owner.store.put([geoShape("shape:after-unshare") as never]);
  await eventually(async () => {
    const { socket, reply } = await connectRaw(await url(server, "editable", "alice"));
    await socket.close();
    return Boolean(reply.diff["shape:after-unshare"]) && reply.isReadonly === false;
  }, 5_000);
  assert.deepEqual(owner.errors, []);
});

Deno.test(`${engine} file rooms: switching to view makes guests read-only; deleting closes all with NOT_FOUND`, async () => {
  await using server = await startAuthServer();
  await seed(server);
  await using owner = connectClient(await url(server, "editable", "alice"));
  // The guest's client reconnects with the same URL after being closed; its token is still valid.
  await using guest = connectClient(await url(server, "editable", "bob"));
  await Promise.all([owner.loaded, guest.loaded]);
  assert.equal(guest.readonly(), false);
  const { db } = server.deps.database;
  await db.updateTable("file").set({ sharedLinkType: "view" }).where("id", "=", "editable")
    .execute();
  await eventually(() => guest.readonly() === true, 5_000);
  assert.equal(owner.readonly(), false);
  await db.updateTable("file").set({ isDeleted: true }).where("id", "=", "editable").execute();
  await eventually(
    () => owner.errors.includes("NOT_FOUND") && guest.errors.includes("NOT_FOUND"),
    5_000,
  );
});

Deno.test(`${engine} file rooms: a file rename reaches the document, an editor rename reaches the file`, async () => {
  await using server = await startAuthServer();
  await seed(server);
  await using owner = connectClient(await url(server, "editable", "alice"));
  await owner.loaded;
  const { db } = server.deps.database;
  await db.updateTable("file").set({ name: "Renamed in the app" }).where("id", "=", "editable")
    .execute();
  const documentName = () =>
    (owner.store.get("document:document" as never) as { name?: string } | undefined)?.name;
  await eventually(() => documentName() === "Renamed in the app", 5_000);

  const document = owner.store.get("document:document" as never) as unknown as Record<
    string,
    unknown
  >;
  owner.store.put([{ ...document, name: "Renamed in the editor" } as never]);
  await eventually(async () => {
    const row = await db.selectFrom("file").select("name").where("id", "=", "editable")
      .executeTakeFirstOrThrow();
    return row.name === "Renamed in the editor";
  }, 5_000);
});

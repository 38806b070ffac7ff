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
  await using server = await startAuthServer({ fileRooms: { newFileGraceMs: 200 } });
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

Deno.test(`${engine} file rooms: a new file's board that connects before the file is committed is admitted once it is`, async () => {
  await using server = await startAuthServer({ fileRooms: { newFileGraceMs: 5_000 } });
  await seed(server);
  // The app opens the board as soon as it sends the creation; the row lands a moment later.
  const connecting = connectRaw(await url(server, "fresh", "alice"));
  await new Promise((resolve) => setTimeout(resolve, 300));
  await server.deps.database.db.insertInto("file").values({
    id: "fresh",
    name: "Fresh",
    ownerId: "alice",
    publishedSlug: "slug-fresh",
    createdAt: now,
    updatedAt: now,
  }).execute();
  const { socket, reply } = await connecting;
  assert.equal(reply.isReadonly, false);
  await socket.close();
  // Not for anonymous visitors, and not past the grace.
  const started = Date.now();
  assert.deepEqual(await closeReason(server, "never"), { code: 4099, reason: "NOT_FOUND" });
  assert.ok(Date.now() - started < 2_000, "an anonymous visitor waited");
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

Deno.test(`${engine} file rooms: edits move the file's updatedAt once per interval, and the owner's list hears it`, async () => {
  await using server = await startAuthServer();
  await seed(server);
  const { db } = server.deps.database;
  const anHourAgo = Date.now() - 3_600_000;
  await db.updateTable("file").set({ updatedAt: anHourAgo }).where("id", "=", "editable").execute();
  await using aliceData = await server.connect("alice");
  await aliceData.initialData();
  const updatedAt = async () =>
    Number(
      (await db.selectFrom("file").select("updatedAt").where("id", "=", "editable")
        .executeTakeFirstOrThrow()).updatedAt,
    );

  // A guest opens the board and draws: the file was edited now.
  const beforeEdit = Date.now();
  await using guest = connectClient(await url(server, "editable", "bob"));
  await guest.loaded;
  guest.store.put([geoShape("shape:edit1") as never]);
  await eventually(async () => await updatedAt() >= beforeEdit, 5_000);
  const edited = await updatedAt();
  await eventually(
    () =>
      aliceData.updates().some((change) =>
        change.table === "file" && change.row.id === "editable" &&
        Number(change.row.updatedAt) === edited
      ),
    5_000,
  );

  // More edits within the interval write nothing more.
  guest.store.put([geoShape("shape:edit2") as never]);
  await eventually(async () =>
    (await server.deps.kv.get(["tldraw", "file:editable", "rec", "shape:edit2"])).value !== null
  );
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(await updatedAt(), edited);
});

Deno.test(`${engine} file rooms: a new file keeps its name when first opened, with nothing drawn`, async () => {
  await using server = await startAuthServer();
  await using alice = await server.connect("alice");
  await alice.initialData();
  const id = `plan-${crypto.randomUUID()}`;
  // As the web app creates a file: the row and the owner's file state in one mutation.
  const created = await alice.mutate("create", [
    {
      table: "file",
      event: "insert",
      row: {
        id,
        name: "Quarterly plan",
        ownerId: "alice",
        publishedSlug: id,
        createdAt: now,
        updatedAt: now,
      },
    },
    { table: "file_state", event: "insert", row: { userId: "alice", fileId: id } },
  ]);
  assert.equal(created.type, "commit");

  // Opened, nothing drawn: the room's document takes the file's name...
  await using owner = connectClient(await url(server, id, "alice"));
  await owner.loaded;
  const documentName = () =>
    (owner.store.get("document:document" as never) as { name?: string } | undefined)?.name;
  await eventually(() => documentName() === "Quarterly plan", 5_000);
  // ...and after the client's first commits (its default page) and a second, the row keeps it.
  owner.store.put([geoShape("shape:first") as never]);
  const { db } = server.deps.database;
  await eventually(async () =>
    (await server.deps.kv.get(["tldraw", `file:${id}`, "rec", "shape:first"])).value !== null
  );
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  const row = await db.selectFrom("file").select("name").where("id", "=", id)
    .executeTakeFirstOrThrow();
  assert.equal(row.name, "Quarterly plan");
  assert.ok(
    !alice.updates().some((change) => change.table === "file" && change.row.name === ""),
    "the file list never saw an empty name",
  );
  assert.equal(documentName(), "Quarterly plan");
});

Deno.test(`${engine} file rooms: a signed-in guest's visit puts the file in their list`, async () => {
  await using server = await startAuthServer();
  await seed(server);
  await using bobData = await server.connect("bob");
  assert.deepEqual((await bobData.initialData()).initialData.files, []);
  const bobToken = await server.token("bob");
  const files = async () => {
    const response = await fetch(`${server.url}/app/files`, {
      headers: { authorization: `Bearer ${bobToken}` },
    });
    return (await response.json()).files as { id: string; name: string }[];
  };
  assert.deepEqual(await files(), []);

  // Anonymous visits and refused ones record nothing.
  await using anonymous = connectClient(await url(server, "editable"));
  await anonymous.loaded;
  assert.deepEqual(await closeReason(server, "private", "bob"), {
    code: 4099,
    reason: "FORBIDDEN",
  });

  await using guest = connectClient(await url(server, "editable", "bob"));
  await guest.loaded;
  await eventually(async () => (await files()).length === 1, 5_000);
  assert.deepEqual((await files()).map(({ id, name }) => ({ id, name })), [
    { id: "editable", name: "File editable" },
  ]);
  // The guest's open clients get the file (its row first, then their file state).
  await bobData.nextUpdate((change) => change.table === "file" && change.row.id === "editable");
  await bobData.nextUpdate((change) =>
    change.table === "file_state" && change.row.fileId === "editable" &&
    typeof change.row.firstVisitAt === "number" && change.row.isFileOwner === false
  );
  const states = await server.deps.database.db.selectFrom("file_state").selectAll()
    .where("userId", "=", "bob").execute();
  assert.deepEqual(states.map((state) => state.fileId), ["editable"]);
});

Deno.test(`${engine} file rooms: the read-only link opens a shared file read-only, never lists it, and follows the row`, async () => {
  await using server = await startAuthServer();
  await seed(server);
  const { db } = server.deps.database;
  const readonlyLink = async (userId: string | undefined, fileId = "editable") => {
    const headers: Record<string, string> = userId
      ? { authorization: `Bearer ${await server.token(userId)}` }
      : {};
    const response = await fetch(`${server.url}/app/file/${fileId}/readonly-link`, { headers });
    const body = await response.json();
    return { status: response.status, readonlyId: body.readonlyId as string | undefined };
  };
  // Only the owner gets it; it is stable and is not the file's id.
  assert.equal((await readonlyLink(undefined)).status, 401);
  assert.equal((await readonlyLink("bob")).status, 403);
  assert.equal((await readonlyLink("alice", "gone")).status, 404);
  const { status, readonlyId } = await readonlyLink("alice");
  assert.equal(status, 200);
  assert.match(readonlyId!, /^[A-Za-z0-9_-]{22}$/);
  assert.equal((await readonlyLink("alice")).readonlyId, readonlyId);

  // The file is shared for editing, but the read-only link is read-only, for anyone.
  await using owner = connectClient(await url(server, "editable", "alice"));
  await owner.loaded;
  owner.store.put([geoShape("shape:mine") as never]);
  await using reader = connectClient(`${server.wsUrl}/ro/${readonlyId}`);
  await reader.loaded;
  assert.equal(reader.readonly(), true);
  await eventually(() => reader.store.has("shape:mine" as never), 5_000);
  reader.store.put([geoShape("shape:intruder") as never]);
  await eventually(() => !reader.store.has("shape:intruder" as never), 5_000);
  owner.store.put([geoShape("shape:marker") as never]);
  await eventually(() => reader.store.has("shape:marker" as never), 5_000);
  assert.equal(owner.store.has("shape:intruder" as never), false);
  // A signed-in reader's list does not get the file (its id would make the edit link).
  await using bobData = await server.connect("bob");
  assert.deepEqual((await bobData.initialData()).initialData.files, []);
  await using bobReader = connectClient(
    `${server.wsUrl}/ro/${readonlyId}?token=${await server.token("bob")}`,
  );
  await bobReader.loaded;
  assert.equal(bobReader.readonly(), true);
  await new Promise((resolve) => setTimeout(resolve, 300));
  const bobStates = await db.selectFrom("file_state").select("fileId")
    .where("userId", "=", "bob").execute();
  assert.deepEqual(bobStates, []);

  // Made private: read-only sessions are closed and the link is refused until shared again.
  await db.updateTable("file").set({ shared: false }).where("id", "=", "editable").execute();
  await eventually(() => reader.errors.includes("FORBIDDEN"), 5_000);
  const linkRefusal = async () => {
    const socket = await openRaw(`${server.wsUrl}/ro/${readonlyId}`);
    socket.send({
      type: "connect",
      connectRequestId: "x",
      lastServerClock: -1,
      protocolVersion: 8,
    });
    return await socket.closed;
  };
  assert.deepEqual(await linkRefusal(), { code: 4099, reason: "FORBIDDEN" });
  // Deleted: NOT_FOUND.
  await db.updateTable("file").set({ shared: true, isDeleted: true }).where("id", "=", "editable")
    .execute();
  assert.deepEqual(await linkRefusal(), { code: 4099, reason: "NOT_FOUND" });
});

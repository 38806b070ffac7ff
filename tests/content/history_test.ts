/**
 * Version history with real tldraw clients and the real database: throttled versions while a room
 * changes, a version when the last session leaves, owner-only routes, restore seen by connected
 * clients, the admin variant for /r/ rooms, retention.
 */
import assert from "node:assert/strict";
import { connectClient, documentRecords } from "../helpers/tldraw_client.ts";
import { geoShape } from "../helpers/raw_socket.ts";
import { eventually, startAuthServer } from "../helpers/user_sync_client.ts";
import { api, seedFiles, tempBlobs } from "../helpers/content.ts";
import { TEST_ENGINE } from "../helpers/db.ts";
import { thin } from "../../sync/content/history.ts";

const engine = `[${TEST_ENGINE}]`;
const INTERVAL = 700;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Whether the room store (KV) holds `recordId` in `roomId`. */
async function committed(server: { deps: { kv: Deno.Kv } }, roomId: string, recordId: string) {
  return (await server.deps.kv.get(["tldraw", roomId, "rec", recordId])).value !== null;
}

async function fileUrl(server: { wsUrl: string; token(u: string): Promise<string> }, id: string) {
  return `${server.wsUrl}/app/file/${id}?token=${encodeURIComponent(await server.token("alice"))}`;
}

Deno.test(`${engine} history: at most one version per interval while changing, one on last leave`, async () => {
  await using blobs = await tempBlobs();
  await using server = await startAuthServer({
    content: { historyIntervalMs: INTERVAL, blobs: blobs.blobs },
  });
  await seedFiles(server);
  const client = connectClient(await fileUrl(server, "f1"));
  await client.loaded;
  // ~2.5 s of edits, one every 100 ms.
  const started = Date.now();
  for (let i = 0; i < 25; i++) {
    client.store.put([
      geoShape(`shape:s${i}`, { x: i * 10, meta: { note: "x".repeat(200) } }) as never,
    ]);
    await sleep(100);
  }
  const editing = Date.now() - started;
  await sleep(INTERVAL + 300);
  const { body: during } = await api(server, "/app/file/f1/history", { as: "alice" });
  const versions = during.versions as { createdAt: number; clock: number; reason: string }[];
  assert.ok(versions.length >= 2, `versions while editing: ${versions.length}`);
  assert.ok(
    versions.length <= Math.ceil((editing + INTERVAL + 300) / INTERVAL) + 1,
    `too many versions: ${versions.length} in ${editing} ms`,
  );
  assert.ok(versions.every((v) => v.reason === "interval"));
  const times = versions.map((v) => v.createdAt).sort((a, b) => a - b);
  for (let i = 1; i < times.length; i++) {
    assert.ok(
      times[i]! - times[i - 1]! >= INTERVAL - 50,
      `versions ${times[i]! - times[i - 1]!} ms apart`,
    );
  }
  // Nothing changes: no new versions.
  await sleep(INTERVAL * 2);
  const { body: idle } = await api(server, "/app/file/f1/history", { as: "alice" });
  assert.equal(idle.versions.length, versions.length);

  await client.close();
  const newest = versions.sort((a, b) => b.createdAt - a.createdAt)[0] as unknown as { id: string };
  // Stored compressed.
  const row = await server.deps.database.db.selectFrom("room_history").select(["size", "data"])
    .where("id", "=", Number(newest.id)).executeTakeFirstOrThrow();
  assert.ok(row.data.byteLength < row.size / 2, `${row.data.byteLength} vs ${row.size}`);
});

Deno.test(`${engine} history: the last session leaving writes the version the timer was waiting for`, async () => {
  await using blobs = await tempBlobs();
  // A long interval: only the leave can write the second version in time.
  await using server = await startAuthServer({
    content: { historyIntervalMs: 60_000, blobs: blobs.blobs },
  });
  await seedFiles(server);
  const client = connectClient(await fileUrl(server, "f1"));
  await client.loaded;
  client.store.put([geoShape("shape:first") as never]);
  await eventually(() => committed(server, "file:f1", "shape:first"));
  // The first change of a quiet room is written right away.
  await eventually(async () => {
    const { body } = await api(server, "/app/file/f1/history", { as: "alice" });
    return body.versions.length === 1;
  });
  client.store.put([geoShape("shape:last", { x: 999 }) as never]);
  await eventually(() => committed(server, "file:f1", "shape:last"));
  await sleep(300);
  const { body: before } = await api(server, "/app/file/f1/history", { as: "alice" });
  assert.equal(before.versions.length, 1, "throttled: no second version yet");
  await client.close();
  await eventually(
    async () => {
      const { body } = await api(server, "/app/file/f1/history", { as: "alice" });
      return body.versions.some((v: { reason: string }) => v.reason === "last_leave");
    },
    9_000, // the engine removes a session 5 s after its socket closes
    "a last-leave version",
  );
  const { body: after } = await api(server, "/app/file/f1/history", { as: "alice" });
  assert.equal(after.versions.length, 2);
  const newest = after.versions[0];
  assert.equal(newest.reason, "last_leave");
  const { body: full } = await api(server, `/app/file/f1/history/${newest.id}`, { as: "alice" });
  const ids = full.snapshot.records.map((r: { id: string }) => r.id);
  assert.ok(ids.includes("shape:last") && ids.includes("shape:first"));
  assert.equal(full.clock, newest.clock);
});

Deno.test(`${engine} history: only the owner reads or restores a file's history`, async () => {
  await using blobs = await tempBlobs();
  await using server = await startAuthServer({
    content: { historyIntervalMs: INTERVAL, blobs: blobs.blobs },
  });
  await seedFiles(server, {
    f1: { shared: true, sharedLinkType: "edit" },
    gone: { isDeleted: true },
  });
  assert.equal((await api(server, "/app/file/f1/history")).status, 401);
  assert.equal((await api(server, "/app/file/f1/history", { as: "bob" })).status, 403);
  assert.equal((await api(server, "/app/file/gone/history", { as: "alice" })).status, 404);
  assert.equal((await api(server, "/app/file/nope/history", { as: "alice" })).status, 404);
  assert.equal((await api(server, "/app/file/f1/history/1", { as: "bob" })).status, 403);
  assert.equal(
    (await api(server, "/app/file/f1/history/1/restore", { as: "bob", method: "POST" })).status,
    403,
  );
  assert.equal((await api(server, "/app/file/f1/history/abc", { as: "alice" })).status, 404);
  assert.equal((await api(server, "/app/file/f1/history/999", { as: "alice" })).status, 404);
});

Deno.test(`${engine} history: a restore reaches connected real clients and becomes a new version`, async () => {
  await using blobs = await tempBlobs();
  await using server = await startAuthServer({
    content: { historyIntervalMs: INTERVAL, blobs: blobs.blobs },
  });
  await seedFiles(server, { f1: { shared: true, sharedLinkType: "edit" } });
  await using owner = connectClient(await fileUrl(server, "f1"));
  const guestUrl = `${server.wsUrl}/app/file/f1?token=${
    encodeURIComponent(await server.token("bob"))
  }`;
  await using guest = connectClient(guestUrl);
  await Promise.all([owner.loaded, guest.loaded]);

  owner.store.put([geoShape("shape:a") as never]);
  const versionWith = async (predicate: (ids: string[]) => boolean) => {
    let found: string | undefined;
    await eventually(
      async () => {
        const { body } = await api(server, "/app/file/f1/history", { as: "alice" });
        for (const version of body.versions) {
          const { body: full } = await api(server, `/app/file/f1/history/${version.id}`, {
            as: "alice",
          });
          if (predicate(full.snapshot.records.map((r: { id: string }) => r.id))) {
            found = version.id;
            return true;
          }
        }
        return false;
      },
      4_000,
      "a version",
    );
    return found!;
  };
  const withA = await versionWith((ids) => ids.includes("shape:a") && !ids.includes("shape:b"));
  guest.store.put([geoShape("shape:b", { x: 100 }) as never]);
  owner.store.put([geoShape("shape:a", { x: 500 }) as never]);
  await versionWith((ids) => ids.includes("shape:b"));
  await eventually(() => owner.store.has("shape:b" as never));

  const { status, body } = await api(server, `/app/file/f1/history/${withA}/restore`, {
    as: "alice",
    method: "POST",
  });
  assert.equal(status, 200);
  assert.equal(body.version.reason, "restore");
  for (const client of [owner, guest]) {
    await eventually(
      () =>
        !client.store.has("shape:b" as never) &&
        (client.store.get("shape:a" as never) as { x?: number } | undefined)?.x === 0,
      3_000,
      "the restored document on a client",
    );
  }
  assert.deepEqual(
    JSON.stringify(documentRecords(owner.store)),
    JSON.stringify(documentRecords(guest.store)),
  );
  const { body: list } = await api(server, "/app/file/f1/history", { as: "alice" });
  assert.equal(list.versions[0].reason, "restore");
  assert.equal(list.versions[0].id, body.version.id);
  // Clients keep working after the restore.
  guest.store.put([geoShape("shape:c") as never]);
  await eventually(() => owner.store.has("shape:c" as never));
});

Deno.test(`${engine} history: the admin-only variant serves /r/ rooms`, async () => {
  await using blobs = await tempBlobs();
  const adminToken = "admin-token-0123456789";
  await using server = await startAuthServer({
    auth: { adminToken, adminUserIds: ["root"] },
    content: { historyIntervalMs: INTERVAL, blobs: blobs.blobs },
  });
  await seedFiles(server, {});
  {
    await using client = connectClient(`${server.wsUrl}/r/legacy-room`);
    await client.loaded;
    client.store.put([geoShape("shape:one") as never]);
    await eventually(() => committed(server, "legacy-room", "shape:one"));
  }
  await eventually(async () => {
    const { body } = await api(server, "/admin/rooms/legacy-room/history", {
      as: { bearer: adminToken },
    });
    if (!body.versions) throw new Error(JSON.stringify(body));
    return body.versions.length >= 1;
  });
  assert.equal((await api(server, "/admin/rooms/legacy-room/history")).status, 401);
  assert.equal(
    (await api(server, "/admin/rooms/legacy-room/history", { as: "alice" })).status,
    403,
  );
  const { status, body } = await api(server, "/admin/rooms/legacy-room/history", { as: "root" });
  assert.equal(status, 200);
  const version = body.versions[0];
  // Change the room, then restore the version as admin: a client that joins sees the old state.
  {
    await using client = connectClient(`${server.wsUrl}/r/legacy-room`);
    await client.loaded;
    client.store.put([geoShape("shape:two") as never]);
    await eventually(() => committed(server, "legacy-room", "shape:two"));
    const restored = await api(server, `/admin/rooms/legacy-room/history/${version.id}/restore`, {
      as: { bearer: adminToken },
      method: "POST",
    });
    assert.equal(restored.status, 200);
    await eventually(() => !client.store.has("shape:two" as never));
    assert.ok(client.store.has("shape:one" as never));
  }
  assert.equal((await api(server, "/admin/rooms/bad$id/history", { as: "root" })).status, 404);
});

Deno.test("history: retention keeps everything recent, one per bucket after, nothing too old", () => {
  const hour = 3_600_000;
  const now = 1_000 * 24 * hour;
  const policy = { denseMs: 24 * hour, bucketMs: hour, maxAgeMs: 10 * 24 * hour };
  const rows = [
    { id: 10, createdAt: now - 1_000 },
    { id: 9, createdAt: now - 2 * hour },
    { id: 8, createdAt: now - 2 * hour - 1 }, // recent: kept
    { id: 7, createdAt: now - 30 * hour - 60_000 }, // newest of its hour: kept
    { id: 6, createdAt: now - 30 * hour - 120_000 }, // same hour: dropped
    { id: 5, createdAt: now - 40 * hour }, // kept
    { id: 4, createdAt: now - 11 * 24 * hour }, // too old
  ];
  assert.deepEqual(thin(rows, policy, now), [6, 4]);
  // The newest version is kept whatever its age.
  assert.deepEqual(thin([{ id: 1, createdAt: 0 }], policy, now), []);
});

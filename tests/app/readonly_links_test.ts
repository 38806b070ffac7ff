/**
 * Read-only links of anonymous rooms carry a read-only id that opens the room read-only and can
 * never be turned into write access, with the real tldraw client.
 */
import assert from "node:assert/strict";
import { createShapeId, type TLRecord } from "@tldraw/tlschema";
import { ReadonlyIds } from "../../sync/readonly_ids.ts";
import { KvRoomStore } from "../../sync/tldraw/kv_room_store.ts";
import { until } from "../helpers/fake_socket.ts";
import { geoShape, RawSocket } from "../helpers/raw_socket.ts";
import { startTestServer } from "../helpers/server.ts";
import { connectClient, documentRecords } from "../helpers/tldraw_client.ts";

async function readonlySlug(url: string, roomId: string): Promise<string> {
  const response = await fetch(`${url}/readonly-slug/${roomId}`);
  assert.equal(response.status, 200);
  const body = await response.json();
  assert.equal(body.isLegacy, false);
  return body.slug;
}

Deno.test("read-only ids: the link opens the room read-only, and never grants write", async () => {
  await using server = await startTestServer();
  await using writer = connectClient(`${server.wsUrl}/r/board`);
  await writer.loaded;
  const shape = createShapeId("first");
  writer.store.put([geoShape(shape) as unknown as TLRecord]);

  const slug = await readonlySlug(server.url, "board");
  assert.notEqual(slug, "board");
  assert.match(slug, /^[A-Za-z0-9_-]{22}$/);
  // Stable, and asking with the read-only id gives the read-only id (never a second level).
  assert.equal(await readonlySlug(server.url, "board"), slug);
  assert.equal(await readonlySlug(server.url, slug), slug);

  // /ro/<read-only id> joins the room read-only and sees its document.
  await using reader = connectClient(`${server.wsUrl}/ro/${slug}`);
  await reader.loaded;
  assert.equal(reader.readonly(), true);
  await until(() => reader.store.has(shape));

  // /r/<read-only id> is the same room, still read-only: its edits are rolled back.
  await using guesser = connectClient(`${server.wsUrl}/r/${slug}`);
  await guesser.loaded;
  assert.equal(guesser.readonly(), true);
  await until(() => guesser.store.has(shape));
  const intruder = createShapeId("intruder");
  guesser.store.put([geoShape(intruder) as unknown as TLRecord]);
  await until(() => !guesser.store.has(intruder));
  const marker = createShapeId("marker");
  writer.store.put([geoShape(marker) as unknown as TLRecord]);
  await until(() => reader.store.has(marker) && guesser.store.has(marker));
  assert.equal(writer.store.has(intruder), false);
  assert.deepEqual(documentRecords(reader.store), documentRecords(writer.store));
  // No room was made under the read-only id.
  assert.equal(await new KvRoomStore(server.deps.kv).readClock(slug), -1);
});

Deno.test("read-only ids: created once even when isolates race, stored in KV", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    // Two isolates' handles on one KV: every concurrent first request agrees.
    const a = new ReadonlyIds(kv);
    const b = new ReadonlyIds(kv);
    const ids = await Promise.all(
      Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).forRoom("raced")),
    );
    assert.equal(new Set(ids).size, 1);
    assert.equal(await a.roomOf(ids[0]!), "raced");
    assert.equal(await b.roomOf("raced"), null);
    assert.notEqual(await a.forRoom("other"), ids[0]);
  } finally {
    kv.close();
  }
});

Deno.test("read-only links: unknown ids are NOT_FOUND; legacy links to existing rooms stay read-only", async () => {
  await using server = await startTestServer();
  // Nothing exists under this id: a read-only link never creates a room.
  await using unknown = new RawSocket(`${server.wsUrl}/ro/never-created`);
  assert.deepEqual(await unknown.closed, { code: 4099, reason: "NOT_FOUND" });
  assert.equal(await new KvRoomStore(server.deps.kv).readClock("never-created"), -1);

  // Links made before read-only ids (the room's own id under /ro/) keep working, read-only.
  await using writer = connectClient(`${server.wsUrl}/r/older`);
  await writer.loaded;
  await using legacy = connectClient(`${server.wsUrl}/ro/older`);
  await legacy.loaded;
  assert.equal(legacy.readonly(), true);
});

Deno.test("room addresses opened in a browser go to the app's page", async () => {
  await using server = await startTestServer();
  for (const [path, target] of [["/r/abc", "/#/r/abc"], ["/ro/xyz", "/#/ro/xyz"]]) {
    const response = await fetch(`${server.url}${path}`, {
      headers: { accept: "text/html,application/xhtml+xml" },
      redirect: "manual",
    });
    await response.body?.cancel();
    assert.equal(response.status, 302);
    assert.equal(response.headers.get("location"), target);
  }
  // Other clients still learn that a WebSocket is expected.
  const plain = await fetch(`${server.url}/r/abc`);
  assert.equal(plain.status, 400);
  assert.equal((await plain.json()).error.code, "bad_request");
});

/**
 * The real tldraw sync client (TLSyncClient 5.4.2) against the real app: convergence, late joiners,
 * reconnects, read-only sessions, presence.
 */
import assert from "node:assert/strict";
import { createShapeId, type TLRecord, type TLShapeId } from "@tldraw/tlschema";
import { until } from "../helpers/fake_socket.ts";
import { geoShape } from "../helpers/raw_socket.ts";
import {
  connectClient,
  documentRecords,
  presenceRecords,
  type TestStore,
} from "../helpers/tldraw_client.ts";
import { startTestServer } from "../helpers/server.ts";
import { testConfig } from "../../config.ts";
import { jitteryKv } from "../helpers/jittery_kv.ts";
import { Random } from "../helpers/fuzz.ts";

function addShape(store: TestStore, id: TLShapeId, x = 0) {
  store.put([{ ...geoShape(id), x } as unknown as TLRecord]);
}

function sameDocument(a: TestStore, b: TestStore): boolean {
  return JSON.stringify(documentRecords(a)) === JSON.stringify(documentRecords(b));
}

Deno.test("real clients: creates, updates and deletes converge; a late joiner gets everything", async () => {
  await using server = await startTestServer();
  const url = `${server.wsUrl}/r/converge`;
  await using a = connectClient(url);
  await using b = connectClient(url);
  await Promise.all([a.loaded, b.loaded]);

  const s1 = createShapeId("one");
  const s2 = createShapeId("two");
  addShape(a.store, s1, 10);
  addShape(b.store, s2, 20);
  await until(() => b.store.has(s1) && a.store.has(s2));

  a.store.update(s2, (r) => ({ ...r, x: 99 }));
  b.store.update(s1, (r) => ({ ...r, y: 42 }));
  await until(() =>
    (b.store.get(s2) as { x: number }).x === 99 && (a.store.get(s1) as { y: number }).y === 42
  );

  a.store.remove([s1]);
  await until(() => !b.store.has(s1));

  // Concurrent edits of the same record from both sides: both converge to the server's order.
  a.store.update(s2, (r) => ({ ...r, x: 1 }));
  b.store.update(s2, (r) => ({ ...r, y: 2 }));
  await until(() => sameDocument(a.store, b.store) && (a.store.get(s2) as { y: number }).y === 2);
  assert.equal((a.store.get(s2) as { x: number }).x, 1);

  await using late = connectClient(url);
  await late.loaded;
  await until(() => sameDocument(late.store, a.store));
  assert.deepEqual(
    documentRecords(late.store).map((r) => r.id),
    ["document:document", "page:page", s2],
  );
});

Deno.test("real clients, remote KV: rapid edits are committed pipelined on a KV that reorders, and converge", async () => {
  // A KV whose commits take 0–15 ms and may land out of order, as Deno Deploy's may.
  const memory = await Deno.openKv(":memory:");
  const random = new Random(17);
  const { kv, stats } = jitteryKv(memory, () => random.int(0, 15));
  const rooms = { ...testConfig().rooms, kvRemote: true, kvCommitsInFlight: 8 };
  try {
    await using server = await startTestServer({ kv, config: { rooms } });
    const url = `${server.wsUrl}/r/pipelined`;
    const clients = [connectClient(url), connectClient(url), connectClient(url)];
    await Promise.all(clients.map((c) => c.loaded));
    const own = clients.map((_, i) => createShapeId(`mine-${i}`));
    const shared = createShapeId("shared");
    clients.forEach((c, i) => addShape(c.store, own[i]!));
    addShape(clients[0]!.store, shared);
    const ids = [...own, shared];
    await until(() => clients.every((c) => ids.every((id) => c.store.has(id))));
    // Every client moves its own shape and the shared one, as fast as it can.
    for (let n = 1; n <= 60; n++) {
      clients.forEach((c, i) => {
        c.store.update(own[i]!, (r) => ({ ...r, x: n }));
        c.store.update(shared, (r) => ({ ...r, y: n * 10 + i }));
      });
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    // (Whose y the shared shape ends with depends on the order the pushes met in.)
    await until(
      () =>
        clients.every((c) =>
          own.every((id) => (c.store.get(id) as { x: number }).x === 60) &&
          sameDocument(c.store, clients[0]!.store)
        ),
      15_000,
    );
    assert.ok(
      stats.maxCommitsInFlight > 1,
      `commits in flight at once: ${stats.maxCommitsInFlight}`,
    );
    const pipelined = await Array.fromAsync(memory.list({ prefix: ["tldraw"] }))
      .then((entries) => entries.filter(({ key }) => key.at(-3) === "pipe"));
    assert.ok(pipelined.length > 0, "some commits were pipelined");
    // A late joiner, loading from the store, sees the same document.
    await using late = connectClient(url);
    await late.loaded;
    await until(() => sameDocument(late.store, clients[0]!.store));
    for (const c of clients) await c.close();
  } finally {
    memory.close();
  }
});

Deno.test("real client: reconnect with lastServerClock is incremental (wipe_presence)", async () => {
  await using server = await startTestServer();
  const url = `${server.wsUrl}/r/reconnect`;
  await using a = connectClient(url, { sessionId: "tab-a" });
  await using b = connectClient(url);
  await using watcher = connectClient(url);
  await Promise.all([a.loaded, b.loaded, watcher.loaded]);
  const s1 = createShapeId("keep");
  const s2 = createShapeId("gone");
  addShape(b.store, s1);
  addShape(b.store, s2);
  await until(() => a.store.has(s2));

  // A goes away; B deletes a shape meanwhile; A comes back with its last clock.
  await a.close();
  b.store.remove([s2]);
  await until(() => !watcher.store.has(s2));
  const frames: unknown[] = [];
  const ws = new WebSocket(`${url}?sessionId=tab-a`);
  const closed = new Promise((resolve) => ws.addEventListener("close", resolve));
  await new Promise((resolve) => ws.addEventListener("open", resolve));
  ws.addEventListener("message", (e) => frames.push(JSON.parse(e.data)));
  ws.send(JSON.stringify({
    type: "connect",
    connectRequestId: "x",
    lastServerClock: (a.client as unknown as { lastServerClock: number }).lastServerClock,
    protocolVersion: 8,
    schema: a.store.schema.serialize(),
  }));
  await until(() => frames.length > 0);
  ws.close();
  await closed;
  const reply = frames[0] as { hydrationType: string; diff: Record<string, unknown[]> };
  assert.equal(reply.hydrationType, "wipe_presence");
  assert.deepEqual(reply.diff[s2], ["remove"]);
  assert.equal(reply.diff[s1], undefined);

  // And the real client itself, reconnecting with its clock, converges.
  await using again = connectClient(url, { sessionId: "tab-a" });
  await again.loaded;
  await until(() => sameDocument(again.store, b.store));
});

Deno.test("real client, read-only: local edits are rolled back and never reach others", async () => {
  await using server = await startTestServer();
  await using writer = connectClient(`${server.wsUrl}/r/readonly`);
  await writer.loaded;
  await using reader = connectClient(`${server.wsUrl}/ro/readonly`);
  await reader.loaded;
  assert.equal(reader.readonly(), true);
  const before = documentRecords(writer.store);
  const id = createShapeId("ro");
  addShape(reader.store, id);
  assert.ok(reader.store.has(id));
  await until(() => !reader.store.has(id));
  // A shape the writer makes still reaches the reader.
  const w = createShapeId("w");
  addShape(writer.store, w);
  await until(() => reader.store.has(w));
  assert.equal(writer.store.has(id), false);
  assert.deepEqual(documentRecords(writer.store).filter((r) => r.id !== w), before);
  assert.deepEqual(reader.errors, []);
});

Deno.test("real clients: presence appears on the other and disappears ~5 s after leaving", async () => {
  await using server = await startTestServer();
  const url = `${server.wsUrl}/r/presence`;
  await using a = connectClient(url);
  await using b = connectClient(url);
  await Promise.all([a.loaded, b.loaded]);
  await until(() => presenceRecords(b.store).length === 1 && presenceRecords(a.store).length === 1);
  a.setCursor(123, 45);
  await until(() =>
    (presenceRecords(b.store)[0] as { cursor: { x: number } } | undefined)?.cursor.x === 123
  );
  const left = Date.now();
  await a.close();
  await until(() => presenceRecords(b.store).length === 0, 8_000);
  const elapsed = Date.now() - left;
  assert.ok(elapsed >= 4_500, `presence removed after ${elapsed} ms`);
});

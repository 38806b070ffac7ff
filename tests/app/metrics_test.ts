/** The engine metrics on `GET /metrics` move with real traffic, by channel, direction and reason. */
import assert from "node:assert/strict";
import { createShapeId, type TLRecord } from "@tldraw/tlschema";
import { sql } from "kysely";
import { testConfig } from "../../config.ts";
import { utf8Length } from "../../sync/utf8.ts";
import { MemoryBusHub } from "../../sync/bus/memory_bus.ts";
import { busTopic } from "../../sync/tldraw/room_manager.ts";
import { connectRaw, connectRequest, geoShape, openRaw } from "../helpers/raw_socket.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { connectClient } from "../helpers/tldraw_client.ts";
import { until } from "../helpers/fake_socket.ts";
import { eventually } from "../helpers/wait.ts";
import { startAuthServer } from "../helpers/user_sync_client.ts";

/** One scrape of `/metrics`, read by series. */
class Scrape {
  constructor(readonly text: string) {}

  /** The value of a series (`name{a="b",…}` exactly as rendered), 0 when absent. */
  value(series: string): number {
    for (const line of this.text.split("\n")) {
      if (line.startsWith("#")) continue;
      const space = line.lastIndexOf(" ");
      if (line.slice(0, space) === series) return Number(line.slice(space + 1));
    }
    return 0;
  }
}

async function scrape(server: TestServer): Promise<Scrape> {
  const response = await fetch(`${server.url}/metrics`);
  assert.equal(response.status, 200);
  return new Scrape(await response.text());
}

const IN = 'sync_messages_total{direction="in",channel="tldraw"}';
const OUT = 'sync_messages_total{direction="out",channel="tldraw"}';
const BYTES_IN = 'sync_bytes_total{direction="in",channel="tldraw"}';
const BYTES_OUT = 'sync_bytes_total{direction="out",channel="tldraw"}';
const SESSIONS = 'sync_sessions{channel="tldraw"}';

Deno.test("metrics: every engine metric is exposed, before any traffic", async () => {
  await using server = await startTestServer();
  const { text } = await scrape(server);
  for (
    const [name, type] of [
      ["sync_sessions", "gauge"],
      ["sync_messages_total", "counter"],
      ["sync_bytes_total", "counter"],
      ["sync_rejects_total", "counter"],
      ["tldraw_push_duration_seconds", "histogram"],
      ["tldraw_commit_conflicts_total", "counter"],
      ["kv_locked_retries_total", "counter"],
      ["kv_operations_total", "counter"],
      ["kv_commit_duration_seconds", "histogram"],
      ["bus_notices_total", "counter"],
      ["bus_notices_late_total", "counter"],
      ["rate_limit_hits_total", "counter"],
      ["user_mutation_rejects_total", "counter"],
      ["db_queries_in_flight", "gauge"],
    ]
  ) assert.match(text, new RegExp(`# TYPE ${name} ${type}\n`), name);
  assert.match(text, /sync_sessions\{channel="livestore"\} 0\n/);
  assert.match(text, /sync_messages_total\{direction="out",channel="user"\} 0\n/);
});

Deno.test("metrics: tldraw messages and bytes are counted exactly, in and out", async () => {
  await using server = await startTestServer();
  const before = await scrape(server);
  const socket = await openRaw(`${server.wsUrl}/r/metered-room`);
  const received: string[] = [];
  socket.ws.addEventListener("message", (event) => received.push(event.data as string));
  await eventually(async () => (await scrape(server)).value(SESSIONS) === 1);
  const connect = JSON.stringify(connectRequest());
  socket.send(connect);
  await socket.waitFor((f) => f.type === "connect");
  const push = JSON.stringify({
    type: "push",
    clientClock: 1,
    diff: { "shape:metered": ["put", geoShape("shape:metered")] },
  });
  socket.send(push);
  await socket.waitForEvent((e) => e.type === "push_result");
  const during = await scrape(server);
  assert.equal(during.value(SESSIONS), 1);
  assert.equal(during.value(IN) - before.value(IN), 2);
  assert.equal(during.value(BYTES_IN) - before.value(BYTES_IN), utf8Length(connect + push));
  assert.equal(during.value(OUT) - before.value(OUT), received.length);
  assert.equal(
    during.value(BYTES_OUT) - before.value(BYTES_OUT),
    received.reduce((n, frame) => n + utf8Length(frame), 0),
  );
  // Multi-byte text is counted in UTF-8 bytes, not characters.
  assert.equal(utf8Length("é€😀"), 2 + 3 + 4);
  await socket.close();
  await eventually(async () => (await scrape(server)).value(SESSIONS) === 0);
});

Deno.test("metrics: push latency by action with the real tldraw client", async () => {
  await using server = await startTestServer();
  const commits = 'tldraw_push_duration_seconds_count{action="commit"}';
  const before = await scrape(server);
  await using a = connectClient(`${server.wsUrl}/r/histogram-room`);
  await using b = connectClient(`${server.wsUrl}/r/histogram-room`);
  await Promise.all([a.loaded, b.loaded]);
  const id = createShapeId("timed");
  a.store.put([{ ...geoShape(id) } as unknown as TLRecord]);
  await until(() => b.store.has(id));
  const after = await scrape(server);
  assert.ok(after.value(commits) - before.value(commits) >= 1, "a commit was timed");
  assert.equal(
    after.value('tldraw_push_duration_seconds_bucket{action="commit",le="+Inf"}'),
    after.value(commits),
  );
  assert.ok(after.value('tldraw_push_duration_seconds_sum{action="commit"}') > 0);
  assert.ok(after.value(IN) - before.value(IN) >= 3, "connects and a push came in");
  assert.ok(after.value(OUT) - before.value(OUT) >= 3, "replies and the patch went out");
  assert.equal(after.value(SESSIONS), 2);
});

Deno.test("metrics: KV operations are counted by kind", async () => {
  await using server = await startTestServer();
  const kind = (name: string) => `kv_operations_total{kind="${name}"}`;
  const before = await scrape(server);
  const { socket } = await connectRaw(`${server.wsUrl}/r/kv-metered-room`);
  await using _socket = socket;
  const loaded = await scrape(server);
  // Loading a new room read its meta and records, and created it.
  assert.ok(loaded.value(kind("get")) + loaded.value(kind("get_many")) > before.value(kind("get")));
  socket.send({
    type: "push",
    clientClock: 1,
    diff: { "shape:kv": ["put", geoShape("shape:kv")] },
  });
  await socket.waitForEvent((e) => e.type === "push_result");
  const pushed = await scrape(server);
  assert.ok(pushed.value(kind("commit")) > loaded.value(kind("commit")), "the push was a commit");
  // Every atomic commit is timed once it settled (set and delete count as commits, untimed).
  const timed = "kv_commit_duration_seconds_count";
  assert.ok(pushed.value(timed) > loaded.value(timed), "the push's commit was timed");
  assert.ok(pushed.value(timed) <= pushed.value(kind("commit")));
  assert.ok(pushed.value("kv_commit_duration_seconds_sum") > 0);
});

Deno.test("metrics: refused sessions are counted by reason", async () => {
  await using server = await startTestServer();
  const tooOld = 'sync_rejects_total{channel="tldraw",code="CLIENT_TOO_OLD"}';
  const notFound = 'sync_rejects_total{channel="tldraw",code="NOT_FOUND"}';
  const before = await scrape(server);
  const old = await openRaw(`${server.wsUrl}/r/refusing-room`);
  old.send(connectRequest({ protocolVersion: 3 }));
  assert.deepEqual(await old.closed, { code: 4099, reason: "CLIENT_TOO_OLD" });
  const bad = await openRaw(`${server.wsUrl}/r/${"x".repeat(200)}`);
  assert.deepEqual(await bad.closed, { code: 4099, reason: "NOT_FOUND" });
  // A plain close by the client is not a refusal.
  const { socket: fine } = await connectRaw(`${server.wsUrl}/r/refusing-room`);
  await fine.close();
  const after = await scrape(server);
  assert.equal(after.value(tooOld) - before.value(tooOld), 1);
  assert.equal(after.value(notFound) - before.value(notFound), 1);
  const allRejects = after.text.split("\n").filter((l) => l.startsWith("sync_rejects_total{"));
  assert.equal(allRejects.reduce((n, l) => n + Number(l.split(" ").at(-1)), 0), 2);
});

Deno.test("metrics: rate-limit hits and the user channel's refusals", async () => {
  await using server = await startAuthServer({
    userData: { service: { connectRate: { limit: 1, windowMs: 60_000 } } },
  });
  const hits = 'rate_limit_hits_total{limit="user_sync_connect"}';
  const limited = 'sync_rejects_total{channel="user",code="RATE_LIMITED"}';
  await using first = await server.connect("rita");
  await first.next((m) => m.type === "initial_data");
  const second = await server.connect("rita");
  assert.deepEqual(await second.closed, { code: 4099, reason: "RATE_LIMITED" });
  const after = await scrape(server);
  assert.equal(after.value(hits), 1);
  assert.equal(after.value(limited), 1);
  assert.ok(after.value('sync_messages_total{direction="out",channel="user"}') >= 1);
});

Deno.test("metrics: rejected user-data mutations are counted by error code", async () => {
  await using server = await startAuthServer();
  await using alice = await server.connect("alice");
  await alice.initialData();
  const forbidden = 'user_mutation_rejects_total{code="forbidden"}';
  const before = (await scrape(server)).value(forbidden);
  const rejected = await alice.mutate("m1", [
    { table: "user", event: "update", row: { id: "bob", name: "x" } },
  ]);
  assert.equal(rejected.errorCode, "forbidden");
  assert.equal((await scrape(server)).value(forbidden) - before, 1);
});

Deno.test("metrics: a lost clock race is a commit conflict", async () => {
  // Two isolates on one KV with neither bus nor poll: one never hears of the other's commit.
  const kv = await Deno.openKv(":memory:");
  const config = testConfig({ rooms: { ...testConfig().rooms, pollMs: 0 } });
  try {
    await using one = await startTestServer({ config, kv });
    await using two = await startTestServer({ config, kv });
    const conflicts = "tldraw_commit_conflicts_total";
    const { socket: a } = await connectRaw(`${one.wsUrl}/r/raced`);
    const { socket: b } = await connectRaw(`${two.wsUrl}/r/raced`);
    b.send({ type: "push", clientClock: 1, diff: { "shape:b": ["put", geoShape("shape:b")] } });
    await b.waitForEvent((e) => e.type === "push_result");
    assert.equal((await scrape(one)).value(conflicts), 0);
    a.send({ type: "push", clientClock: 1, diff: { "shape:a": ["put", geoShape("shape:a")] } });
    const result = await a.waitForEvent((e) => e.type === "push_result");
    assert.equal(result.action, "commit");
    assert.equal((await scrape(one)).value(conflicts), 1);
    assert.equal((await scrape(two)).value(conflicts), 0);
    await a.close();
    await b.close();
  } finally {
    kv.close();
  }
});

Deno.test("metrics: bus notices sent, received and late", async () => {
  const hub = new MemoryBusHub();
  const kv = await Deno.openKv(":memory:");
  const outsider = hub.connect("outsider");
  try {
    await using one = await startTestServer({ kv, bus: hub.connect("one") });
    await using two = await startTestServer({ kv, bus: hub.connect("two") });
    try {
      const sent = 'bus_notices_total{direction="sent",kind="tldraw"}';
      const received = 'bus_notices_total{direction="received",kind="tldraw"}';
      const { socket: a } = await connectRaw(`${one.wsUrl}/r/noticed`);
      const { socket: b } = await connectRaw(`${two.wsUrl}/r/noticed`);
      a.send({ type: "push", clientClock: 1, diff: { "shape:n": ["put", geoShape("shape:n")] } });
      const { serverClock } = await a.waitForEvent((e) => e.type === "push_result");
      await b.waitForEvent((e) => e.type === "patch" && e.serverClock === serverClock);
      await eventually(async () => (await scrape(two)).value(received) >= 1);
      assert.ok((await scrape(one)).value(sent) >= 1);
      assert.equal((await scrape(two)).value("bus_notices_late_total"), 0);
      // A notice for a clock the room already has is late; one for a newer clock is not.
      await outsider.publish(busTopic("noticed"), { clock: serverClock });
      await eventually(async () => (await scrape(two)).value("bus_notices_late_total") === 1);
      await outsider.publish(busTopic("noticed"), { clock: serverClock + 1_000 });
      await eventually(async () => (await scrape(two)).value(received) >= 3);
      assert.equal((await scrape(two)).value("bus_notices_late_total"), 1);
      await a.close();
      await b.close();
    } finally {
      await one.close();
      await two.close();
      await one.deps.bus?.close();
      await two.deps.bus?.close();
    }
  } finally {
    await outsider.close();
    kv.close();
  }
});

Deno.test("metrics: database queries in flight", async () => {
  await using server = await startTestServer();
  const database = server.deps.database;
  const inFlight = "db_queries_in_flight";
  // Background work (the change feed, the deletion worker) queries now and then: wait for a gap.
  await eventually(() => database.queriesInFlight === 0);
  // A transaction holds an advisory lock; a query that wants it waits (in Postgres for the lock,
  // in PGlite for the one connection) and is in flight until the transaction ends.
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let locked!: () => void;
  const holding = new Promise<void>((resolve) => (locked = resolve));
  const holder = database.rawTransaction(async (session) => {
    await session.query("select pg_advisory_xact_lock(4242)");
    locked();
    await gate;
  });
  await holding;
  const waiting = sql`select pg_advisory_xact_lock(4242)`.execute(database.db);
  await until(() => database.queriesInFlight >= 1);
  // Counted the whole time it waits (background queries may add to it, never take it away).
  for (let i = 0; i < 5; i++) {
    assert.ok((await scrape(server)).value(inFlight) >= 1);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  release();
  await holder;
  await waiting;
  await eventually(async () => (await scrape(server)).value(inFlight) === 0);
});

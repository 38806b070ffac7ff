/** The admin API: who may use it, and what it does on this isolate and on the others. */
import assert from "node:assert/strict";
import { testConfig } from "../../config.ts";
import { MemoryBusHub } from "../../sync/bus/memory_bus.ts";
import { connectRaw, geoShape } from "../helpers/raw_socket.ts";
import { startTestServer } from "../helpers/server.ts";
import { eventually, startAuthServer } from "../helpers/user_sync_client.ts";

const ADMIN_TOKEN = "admin-token-for-tests-0123456789";

const ADMIN_SETTINGS = { adminToken: ADMIN_TOKEN, adminUserIds: ["root-user"] };

function adminAuth(): { auth: ReturnType<typeof testConfig>["auth"] } {
  return { auth: { ...testConfig().auth, ...ADMIN_SETTINGS } };
}

Deno.test("admin routes refuse anyone without admin credentials", async () => {
  await using server = await startAuthServer({ auth: ADMIN_SETTINGS });
  const get = async (headers: Record<string, string> = {}) => {
    const response = await fetch(`${server.url}/admin/rooms`, { headers });
    const body = await response.json();
    return { status: response.status, code: body.error?.code };
  };
  assert.deepEqual(await get(), { status: 401, code: "unauthorized" });
  assert.deepEqual(await get({ Authorization: "Bearer wrong-token" }), {
    status: 401,
    code: "unauthorized",
  });
  const userToken = await server.token("someone");
  assert.deepEqual(await get({ Authorization: `Bearer ${userToken}` }), {
    status: 403,
    code: "forbidden",
  });
  assert.equal((await get({ Authorization: `Bearer ${ADMIN_TOKEN}` })).status, 200);
  const adminUser = await server.token("root-user");
  assert.equal((await get({ Authorization: `Bearer ${adminUser}` })).status, 200);
  // Mutating routes too.
  const close = await fetch(`${server.url}/admin/rooms/x/close`, { method: "POST" });
  assert.equal(close.status, 401);
  await close.body?.cancel();
});

Deno.test("admin: list rooms and sessions, read a snapshot, close sessions with a reason", async () => {
  await using server = await startTestServer({ config: adminAuth() });
  const headers = { Authorization: `Bearer ${ADMIN_TOKEN}` };
  const { socket: a } = await connectRaw(`${server.wsUrl}/r/ops-room?sessionId=a`);
  const { socket: b } = await connectRaw(`${server.wsUrl}/r/ops-room?sessionId=b`);

  const local = await (await fetch(`${server.url}/admin/rooms`, { headers })).json();
  const room = local.rooms.find((r: { roomId: string }) => r.roomId === "ops-room");
  assert.deepEqual(room.sessions.map((s: { sessionId: string }) => s.sessionId).sort(), ["a", "b"]);

  const wide = await (await fetch(`${server.url}/admin/rooms/ops-room`, { headers })).json();
  assert.equal(wide.sessions.length, 2);
  assert.equal(typeof wide.clock, "number");
  const missing = await fetch(`${server.url}/admin/rooms/no-such-room`, { headers });
  assert.equal(missing.status, 404);
  await missing.body?.cancel();

  const snapshot = await (await fetch(`${server.url}/admin/rooms/ops-room/snapshot`, { headers }))
    .json();
  assert.ok(snapshot.records.some((r: { id: string }) => r.id === "document:document"));

  const closeOne = await fetch(`${server.url}/admin/rooms/ops-room/close`, {
    method: "POST",
    headers: { ...headers, "Content-Type": "application/json" },
    body: JSON.stringify({ sessionId: "a", reason: "FORBIDDEN" }),
  });
  assert.deepEqual(await closeOne.json(), { closedHere: 1 });
  assert.deepEqual(await a.closed, { code: 4099, reason: "FORBIDDEN" });
  const bad = await fetch(`${server.url}/admin/rooms/ops-room/close`, {
    method: "POST",
    headers: { ...headers, "Content-Type": "application/json" },
    body: JSON.stringify({ reason: "NOT_A_REASON" }),
  });
  assert.equal(bad.status, 400);
  await bad.body?.cancel();
  // A body that does not parse is a 400 and closes nothing (it once meant "close everyone").
  for (const body of ["{not json", '{"sessionId": ', "null", "[]", '"b"']) {
    const malformed = await fetch(`${server.url}/admin/rooms/ops-room/close`, {
      method: "POST",
      headers: { ...headers, "Content-Type": "application/json" },
      body,
    });
    assert.equal(malformed.status, 400, body);
    assert.equal((await malformed.json()).error.code, "bad_request");
  }
  const still = await (await fetch(`${server.url}/admin/rooms/ops-room`, { headers })).json();
  assert.deepEqual(still.sessions.map((s: { sessionId: string }) => s.sessionId), ["b"]);
  await b.close();

  const health = await (await fetch(`${server.url}/admin/health`, { headers })).json();
  assert.equal(health.kv.ok, true);
  assert.equal(health.db.ok, true);
});

Deno.test("admin: closing a room's sessions reaches the other isolates over the bus", async () => {
  const hub = new MemoryBusHub();
  const kv = await Deno.openKv(":memory:");
  await using one = await startTestServer({ config: adminAuth(), kv, bus: hub.connect("one") });
  await using two = await startTestServer({ config: adminAuth(), kv, bus: hub.connect("two") });
  try {
    const { socket } = await connectRaw(`${two.wsUrl}/r/spread?sessionId=far`);
    const response = await fetch(`${one.url}/admin/rooms/spread/close`, {
      method: "POST",
      headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, "Content-Type": "application/json" },
      body: JSON.stringify({ reason: "NOT_FOUND" }),
    });
    assert.deepEqual(await response.json(), { closedHere: 0 });
    assert.deepEqual(await socket.closed, { code: 4099, reason: "NOT_FOUND" });
  } finally {
    await one.close();
    await two.close();
    await one.deps.bus?.close();
    await two.deps.bus?.close();
    kv.close();
  }
});

Deno.test("admin: force-reloading a user closes their data sockets with 1012", async () => {
  await using server = await startAuthServer({ auth: ADMIN_SETTINGS });
  await using client = await server.connect("alice");
  await eventually(() => client.messages.some((m) => m.type === "initial_data"));
  const response = await fetch(`${server.url}/admin/users/alice/reload`, {
    method: "POST",
    headers: { Authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  assert.deepEqual(await response.json(), { closedHere: 1 });
  assert.deepEqual(await client.closed, { code: 1012, reason: "reload" });
});

Deno.test("admin: the operator page's stats count pushes and their latency; /admin opens the page", async () => {
  await using server = await startTestServer({ config: adminAuth() });
  const headers = { Authorization: `Bearer ${ADMIN_TOKEN}` };
  const stats = async () => await (await fetch(`${server.url}/admin/stats`, { headers })).json();
  const before = await stats();
  assert.equal(before.pushes.count, 0);
  const { socket } = await connectRaw(`${server.wsUrl}/r/stats-room?sessionId=s`);
  await using _socket = socket;
  socket.send({
    type: "push",
    clientClock: 1,
    diff: { "shape:one": ["put", geoShape("shape:one")] },
  });
  await socket.waitFor((f) => f.type === "data" || f.type === "push_result");
  await eventually(async () => (await stats()).pushes.count === 1);
  const after = await stats();
  assert.equal(after.sessions, 1);
  assert.equal(after.roomsLoaded, 1);
  assert.equal(after.pushes.buckets.length, after.pushes.bounds.length);
  assert.equal(after.pushes.buckets.at(-1), 1);
  assert.ok(after.pushes.sum > 0);
  // Without credentials: 401, as every admin route.
  const refused = await fetch(`${server.url}/admin/stats`);
  assert.equal(refused.status, 401);
  await refused.body?.cancel();

  // A browser asking for /admin gets the web app's operator page; an API client is refused.
  const page = await fetch(`${server.url}/admin`, {
    headers: { accept: "text/html" },
    redirect: "manual",
  });
  assert.equal(page.status, 302);
  assert.equal(page.headers.get("location"), "/#/admin");
  await page.body?.cancel();
  const api = await fetch(`${server.url}/admin`);
  assert.equal(api.status, 401);
  await api.body?.cancel();
});

Deno.test("admin: the isolate list shows every isolate's rooms and sessions; a stopped isolate leaves it", async () => {
  const kv = await Deno.openKv(":memory:");
  const config = { ...adminAuth(), rooms: { ...testConfig().rooms, reportMs: 100 } };
  await using one = await startTestServer({ config, kv });
  const two = await startTestServer({ config, kv });
  try {
    const headers = { Authorization: `Bearer ${ADMIN_TOKEN}` };
    type Listed = {
      isolate: string;
      sessions: number;
      rooms: { roomId: string; sessions: { sessionId: string }[] }[];
    };
    const list = async () =>
      ((await (await fetch(`${one.url}/admin/isolates`, { headers })).json()).isolates) as Listed[];
    const { socket } = await connectRaw(`${two.wsUrl}/r/far-room?sessionId=far`);
    await using _socket = socket;
    let far: Listed | undefined;
    await eventually(async () => {
      far = (await list()).find((report) => report.rooms.some((r) => r.roomId === "far-room"));
      return far !== undefined;
    });
    assert.equal(far!.sessions, 1);
    assert.deepEqual(far!.rooms[0]!.sessions.map((s) => s.sessionId), ["far"]);
    const isolates = await list();
    assert.equal(isolates.length, 2);
    const refused = await fetch(`${one.url}/admin/isolates`);
    assert.equal(refused.status, 401);
    await refused.body?.cancel();

    await two.close();
    assert.deepEqual((await list()).map((report) => report.isolate), [
      isolates.find((report) => report.isolate !== far!.isolate)!.isolate,
    ]);
  } finally {
    await two.close();
    await one.close();
    kv.close();
  }
});

/**
 * LiveStore sync wire protocol, driven by raw sockets: framing, paging, errors, broadcast, malformed input
 * and forged cursors. The real client is exercised in livestore_client_test.ts.
 */
import assert from "node:assert/strict";
import { PostgresEventStore } from "../sync/livestore/postgres_event_store.ts";
import { MemoryBusHub } from "../sync/bus/memory_bus.ts";
import {
  event,
  livestoreQuery,
  RawLivestoreSocket,
  serveLivestore,
} from "./helpers/livestore_socket.ts";
import { startTestServer, type TestServer, type TestServerOptions } from "./helpers/server.ts";
import { testConfig } from "../config.ts";

/**
 * The app with LiveStore clients allowed without a JWT or token (`LIVESTORE_ANONYMOUS`): these
 * tests are about the protocol, not about access (tests/app/livestore_auth_test.ts is).
 */
function startOpenServer(options: TestServerOptions = {}): Promise<TestServer> {
  const livestore = { ...testConfig().livestore, ...options.config?.livestore, anonymous: true };
  return startTestServer({ ...options, config: { ...options.config, livestore } });
}

// @tldraw/utils (imported by the app) schedules a 100 ms timer when first imported; let it fire before
// the first test so the op sanitizer does not attribute it to that test.
await new Promise((resolve) => setTimeout(resolve, 150));

const url = (server: TestServer) => `${server.wsUrl}/livestore`;

async function seed(server: TestServer, storeId: string, count: number): Promise<string> {
  const store = new PostgresEventStore(server.deps.database);
  const { backendId } = await store.open(storeId);
  for (let from = 1; from <= count; from += 1000) {
    const batch = [];
    for (let seq = from; seq <= Math.min(count, from + 999); seq++) {
      batch.push({ ...event(seq), argsJson: JSON.stringify({ id: `e${seq}` }) });
    }
    const result = await store.append(storeId, batch);
    assert.ok(result.ok);
  }
  return backendId;
}

Deno.test("Ping gets Pong, also inside a longer frame", async () => {
  await using server = await startOpenServer();
  await using socket = await RawLivestoreSocket.open(url(server), "s1");
  socket.send('{"_tag":"Ping"}');
  await socket.next((f) => f._tag === "Pong");
  socket.send({ _tag: "Ping" });
  await socket.next((f) => f._tag === "Pong");
});

Deno.test("pull of an empty store sends one empty NoMore chunk, then Exit Success", async () => {
  await using server = await startOpenServer();
  await using socket = await RawLivestoreSocket.open(url(server), "s1");
  const id = socket.pull("s1");
  const value = await socket.chunk(id);
  assert.deepEqual(value.batch, []);
  assert.deepEqual(value.pageInfo, { _tag: "NoMore" });
  assert.equal(typeof value.backendId, "string");
  const exit = await socket.exit(id);
  assert.deepEqual(exit.exit, { _tag: "Success" });
});

Deno.test("pull pages 250 events as 100/100/50 with MoreKnown then NoMore", async () => {
  await using server = await startOpenServer();
  const backendId = await seed(server, "s1", 250);
  await using socket = await RawLivestoreSocket.open(url(server), "s1");
  const id = socket.pull("s1");
  const sizes: number[] = [];
  const infos: unknown[] = [];
  for (let i = 0; i < 3; i++) {
    const value = await socket.chunk(id);
    assert.equal(value.backendId, backendId);
    sizes.push(value.batch.length);
    infos.push(value.pageInfo);
  }
  assert.deepEqual(sizes, [100, 100, 50]);
  assert.deepEqual(infos, [
    { _tag: "MoreKnown", remaining: 150 },
    { _tag: "MoreKnown", remaining: 50 },
    { _tag: "NoMore" },
  ]);
  await socket.exit(id);
  // A cursor continues after its seqNum.
  const next = socket.pull("s1", {
    cursor: { _tag: "Some", value: { backendId, eventSequenceNumber: 240 } },
  });
  const rest = await socket.chunk(next);
  assert.deepEqual(
    rest.batch.map((b: { eventEncoded: { seqNum: number } }) => b.eventEncoded.seqNum),
    [
      241,
      242,
      243,
      244,
      245,
      246,
      247,
      248,
      249,
      250,
    ],
  );
  const first = rest.batch[0];
  assert.deepEqual(first.eventEncoded, {
    name: "v1.TodoCreated",
    args: { id: "e241" },
    seqNum: 241,
    parentSeqNum: 240,
    clientId: "raw",
    sessionId: "raw-s",
  });
  assert.equal(first.metadata._tag, "Some");
  assert.equal(first.metadata.value._tag, "SyncMessage.SyncMetadata");
  assert.ok(!Number.isNaN(Date.parse(first.metadata.value.createdAt)));
});

Deno.test("push is acked and broadcast to every live pull, the pusher's included", async () => {
  await using server = await startOpenServer();
  await using a = await RawLivestoreSocket.open(url(server), "s1");
  await using b = await RawLivestoreSocket.open(url(server), "s1");
  const pullA = a.pull("s1", { live: true });
  const pullB = b.pull("s1", { live: true });
  const { backendId } = await a.chunk(pullA);
  await b.chunk(pullB);
  const pushId = a.push("s1", [event(1, "a"), event(2, "a")], backendId);
  assert.deepEqual((await a.exit(pushId)).exit, { _tag: "Success", value: {} });
  for (const [socket, id] of [[a, pullA], [b, pullB]] as const) {
    const value = await socket.chunk(id);
    assert.deepEqual(
      value.batch.map((item: { eventEncoded: { seqNum: number } }) => item.eventEncoded.seqNum),
      [1, 2],
    );
    assert.deepEqual(value.pageInfo, { _tag: "NoMore" });
  }
  // A live pull never ends with Exit.
  const frames = await a.quiet(100);
  assert.equal(frames.filter((f) => f._tag === "Exit" && f.requestId === pullA).length, 0);
});

Deno.test("push with a stale parent gets ServerAheadError and changes nothing", async () => {
  await using server = await startOpenServer();
  await seed(server, "s1", 3);
  await using socket = await RawLivestoreSocket.open(url(server), "s1");
  const id = socket.push("s1", [event(2, "late")]);
  const exit = await socket.exit(id);
  assert.deepEqual(exit.exit, {
    _tag: "Failure",
    cause: {
      _tag: "Fail",
      error: { _tag: "ServerAheadError", minimumExpectedNum: 3, providedNum: 1 },
    },
  });
  const store = new PostgresEventStore(server.deps.database);
  assert.equal((await store.open("s1")).head, 3);
});

Deno.test("empty push batch is acked straight away", async () => {
  await using server = await startOpenServer();
  await using socket = await RawLivestoreSocket.open(url(server), "s1");
  const id = socket.push("s1", []);
  assert.deepEqual((await socket.exit(id)).exit, { _tag: "Success", value: {} });
});

Deno.test("forged cursors: wrong backendId, beyond the head, negative", async () => {
  await using server = await startOpenServer();
  const backendId = await seed(server, "s1", 5);
  await seed(server, "other", 5);
  await using socket = await RawLivestoreSocket.open(url(server), "s1");

  const wrong = socket.pull("s1", {
    cursor: { _tag: "Some", value: { backendId: "not-the-backend", eventSequenceNumber: 2 } },
  });
  assert.deepEqual((await socket.exit(wrong)).exit.cause.error, {
    _tag: "BackendIdMismatchError",
    expected: backendId,
    received: "not-the-backend",
  });

  const beyond = socket.pull("s1", {
    cursor: { _tag: "Some", value: { backendId, eventSequenceNumber: 1_000_000 } },
  });
  const empty = await socket.chunk(beyond);
  assert.deepEqual(empty.batch, []);
  assert.deepEqual(empty.pageInfo, { _tag: "NoMore" });
  await socket.exit(beyond);

  const negative = socket.pull("s1", {
    cursor: { _tag: "Some", value: { backendId, eventSequenceNumber: -5 } },
  });
  assert.equal((await socket.exit(negative)).exit.cause._tag, "Die");

  // The payload's storeId must be the connection's: no reading another store through this socket.
  const cross = socket.pull("other");
  const crossExit = await socket.exit(cross);
  assert.equal(crossExit.exit.cause.error._tag, "UnknownError");
  assert.equal(socket.frames.filter((f) => f._tag === "Chunk").length, 0);

  const pushWrongBackend = socket.push("s1", [event(6)], "not-the-backend");
  assert.equal(
    (await socket.exit(pushWrongBackend)).exit.cause.error._tag,
    "BackendIdMismatchError",
  );
});

Deno.test("malformed frames get an error for that client only and the socket keeps working", async () => {
  await using server = await startOpenServer();
  await using socket = await RawLivestoreSocket.open(url(server), "s1");
  await using bystander = await RawLivestoreSocket.open(url(server), "s1");
  const bystanderPull = bystander.pull("s1", { live: true });
  await bystander.chunk(bystanderPull);

  socket.send("not json");
  assert.equal((await socket.next((f) => f._tag === "Defect")).defect, "frame is not valid JSON");
  socket.send({ _tag: "Nonsense" });
  await socket.next((f) => f._tag === "Defect");
  socket.send({ _tag: "Request", id: "7", tag: "SyncWsRpc.Pull", payload: { nope: 1 } });
  assert.equal((await socket.exit("7")).exit.cause._tag, "Die");
  const unknownTag = socket.request("SyncWsRpc.Drop", {});
  assert.match((await socket.exit(unknownTag)).exit.cause.defect, /Unknown request tag/);
  const badEvent = socket.push("s1", [{ name: "x", seqNum: "one" }]);
  assert.equal((await socket.exit(badEvent)).exit.cause._tag, "Die");
  // Not chained: the second event does not follow the first.
  const gap = socket.push("s1", [event(1), event(3)]);
  const gapExit = await socket.exit(gap);
  assert.equal(gapExit.exit.cause.error._tag, "UnknownError");
  assert.equal(gapExit.exit.cause.error.cause, "invalid push batch");
  socket.send(new Uint8Array([1, 2, 3]));
  await socket.next((f) => f._tag === "Defect");

  socket.send({ _tag: "Ping" });
  await socket.next((f) => f._tag === "Pong");
  const store = new PostgresEventStore(server.deps.database);
  assert.equal((await store.open("s1")).head, 0);
  const bystanderFrames = await bystander.quiet(100);
  assert.equal(bystanderFrames.length, 0);
});

Deno.test("oversized frames close the socket with 1009", async () => {
  await using server = await startOpenServer();
  await using socket = await RawLivestoreSocket.open(url(server), "s1");
  socket.send(
    JSON.stringify({ _tag: "Ping", pad: "x".repeat(server.deps.config.limits.maxMessageBytes) }),
  );
  const close = await socket.closed;
  assert.equal(close.code, 1009);
});

Deno.test("Interrupt ends a live pull", async () => {
  await using server = await startOpenServer();
  await using a = await RawLivestoreSocket.open(url(server), "s1");
  await using b = await RawLivestoreSocket.open(url(server), "s1");
  const pull = a.pull("s1", { live: true });
  await a.chunk(pull);
  a.send({ _tag: "Interrupt", requestId: pull, interruptors: [] });
  assert.equal((await a.exit(pull)).exit.cause._tag, "Interrupt");
  await b.exit(b.push("s1", [event(1)]));
  const frames = await a.quiet(150);
  assert.equal(frames.filter((f) => f._tag === "Chunk").length, 0);
});

Deno.test("connect checks: storeId, transport, upgrade, payload encoding", async () => {
  await using server = await startOpenServer();
  const base = `${server.url}/livestore`;
  const noStore = await fetch(`${base}?transport=ws`);
  assert.equal(noStore.status, 400);
  await noStore.body?.cancel();
  const noUpgrade = await fetch(`${base}/any/path?${livestoreQuery("s1")}`);
  assert.equal(noUpgrade.status, 426);
  await noUpgrade.body?.cancel();
  const badTransport = await fetch(`${base}?storeId=s1&transport=carrier-pigeon`);
  assert.equal(badTransport.status, 400);
  await badTransport.body?.cancel();
  const badPayload = await fetch(`${base}?storeId=s1&transport=ws&payload=%257Bnot`);
  assert.equal(badPayload.status, 400);
  await badPayload.body?.cancel();
  // Store ids: letters, digits and _ - . : @ =, at most 128 characters.
  for (const storeId of ["bad id", "../etc", "x".repeat(129), "-leading", "a\u0000b", "é"]) {
    const response = await fetch(`${base}?${livestoreQuery(storeId)}`, {
      headers: { upgrade: "websocket" },
    });
    assert.equal(response.status, 400, storeId);
    assert.equal((await response.json()).error.message, "storeId is missing or invalid");
  }
  for (const storeId of ["team:alpha", "doc:f_1-2", "todo.app@v2=x", "x".repeat(128)]) {
    const response = await fetch(`${base}?${livestoreQuery(storeId)}`);
    assert.equal(response.status, 426, storeId);
    await response.body?.cancel();
  }
});

Deno.test("pushes are limited per client and store, with an error that says so", async () => {
  await using server = await startOpenServer({
    config: {
      livestore: { ...testConfig().livestore, pushesPerMinute: 3 },
    },
  });
  await using socket = await RawLivestoreSocket.open(url(server), "limited");
  for (let seq = 1; seq <= 3; seq++) {
    const exit = await socket.exit(socket.push("limited", [event(seq, "client-a")]));
    assert.deepEqual(exit.exit, { _tag: "Success", value: {} });
  }
  const refused = await socket.exit(socket.push("limited", [event(4, "client-a")]));
  assert.equal(refused.exit._tag, "Failure");
  const error = refused.exit.cause.error;
  assert.equal(error._tag, "UnknownError");
  assert.equal(error.cause, "rate limited");
  assert.match(error.note, /3 pushes per minute per client/);
  // Another client of the store, and the same client elsewhere, have budgets of their own.
  const other = await socket.exit(socket.push("limited", [event(4, "client-b")]));
  assert.deepEqual(other.exit, { _tag: "Success", value: {} });
  await using elsewhere = await RawLivestoreSocket.open(url(server), "other-store");
  const fresh = await elsewhere.exit(elsewhere.push("other-store", [event(1, "client-a")]));
  assert.deepEqual(fresh.exit, { _tag: "Success", value: {} });
  // Nothing of the refused push was stored.
  const stored = await new PostgresEventStore(server.deps.database).read("limited", 0, 100);
  assert.deepEqual(stored.events.map((e) => [e.seqNum, e.clientId]), [
    [1, "client-a"],
    [2, "client-a"],
    [3, "client-a"],
    [4, "client-b"],
  ]);
});

Deno.test("HTTP transport: Ping, Push, Pull answered with JSON arrays", async () => {
  await using server = await startOpenServer();
  const endpoint = `${server.url}/livestore/x?${livestoreQuery("s1", { authToken: "t" }, "http")}`;
  const post = async (body: unknown) => {
    const response = await fetch(endpoint, {
      method: "POST",
      headers: { "content-type": "application/json", "x-livestore-store-id": "s1" },
      body: JSON.stringify(body),
    });
    assert.equal(response.status, 200);
    return await response.json();
  };
  const request = (id: string, tag: string, payload: unknown) => ({
    _tag: "Request",
    id,
    tag,
    payload,
    headers: [],
  });
  assert.deepEqual(await post(request("0", "SyncHttpRpc.Ping", { storeId: "s1" })), [
    {
      _tag: "Exit",
      requestId: "0",
      exit: { _tag: "Success", value: { _tag: "SyncMessage.Pong" } },
    },
  ]);
  const pushed = await post(
    request("1", "SyncHttpRpc.Push", {
      storeId: "s1",
      batch: [event(1), event(2)],
      backendId: { _tag: "None" },
    }),
  );
  assert.deepEqual(pushed, [{
    _tag: "Exit",
    requestId: "1",
    exit: { _tag: "Success", value: {} },
  }]);
  const pulled = await post(
    request("2", "SyncHttpRpc.Pull", { storeId: "s1", cursor: { _tag: "None" } }),
  );
  assert.equal(pulled.length, 2);
  assert.equal(pulled[0]._tag, "Chunk");
  assert.equal(pulled[0].values[0].batch.length, 2);
  assert.deepEqual(pulled[1], { _tag: "Exit", requestId: "2", exit: { _tag: "Success" } });
  const notJson = await fetch(endpoint, { method: "POST", body: "{" });
  assert.equal(notJson.status, 400);
  await notJson.body?.cancel();
});

Deno.test("the cross-isolate bus alone carries live pulls between isolates; dropped hints only delay", async () => {
  await using server = await startOpenServer();
  const hub = new MemoryBusHub();
  const busA = hub.connect("isolate-a");
  const busB = hub.connect("isolate-b");
  try {
    // No NOTIFY and no head checks on B: only the bus can tell it about A's pushes.
    await using a = await serveLivestore(server.deps, { bus: busA, notifications: false });
    await using b = await serveLivestore(server.deps, {
      bus: busB,
      notifications: false,
      headCheckIntervalMs: 0,
    });
    await using pusher = await RawLivestoreSocket.open(a.wsUrl, "s1");
    await using reader = await RawLivestoreSocket.open(b.wsUrl, "s1");
    const pull = reader.pull("s1", { live: true });
    await reader.chunk(pull);
    await pusher.exit(pusher.push("s1", [event(1)]));
    assert.equal((await reader.chunk(pull)).batch[0].eventEncoded.seqNum, 1);

    // A lost hint: nothing arrives until the next one, which brings both events, in order.
    hub.setDropRule(() => true);
    await pusher.exit(pusher.push("s1", [event(2)]));
    assert.equal((await reader.quiet(200)).length, 0);
    hub.setDropRule(() => false);
    await pusher.exit(pusher.push("s1", [event(3)]));
    const seqs: number[] = [];
    while (seqs.length < 2) {
      for (const item of (await reader.chunk(pull)).batch) seqs.push(item.eventEncoded.seqNum);
    }
    assert.deepEqual(seqs, [2, 3]);
  } finally {
    await busA.close();
    await busB.close();
  }
});

Deno.test("a socket may hold a few live pulls, not unboundedly many", async () => {
  await using server = await startOpenServer();
  await using socket = await RawLivestoreSocket.open(url(server), "s1");
  for (let i = 0; i < 8; i++) await socket.chunk(socket.pull("s1", { live: true }));
  const refused = await socket.exit(socket.pull("s1", { live: true }));
  assert.equal(refused.exit.cause.error._tag, "UnknownError");
});

Deno.test("live pulls sent at once count against the per-socket limit when requested", async () => {
  await using server = await startOpenServer();
  await seed(server, "burst", 300);
  await using socket = await RawLivestoreSocket.open(url(server), "burst");
  // 40 live pulls in one go, each with pages to stream first (so none is established quickly).
  const ids = Array.from({ length: 40 }, () => socket.pull("burst", { live: true }));
  const outcomes = await Promise.all(ids.map(async (id) => {
    const frame = await socket.next(
      (f) => f.requestId === id && (f._tag === "Chunk" || f._tag === "Exit"),
    );
    return frame._tag === "Chunk" ? "live" : frame.exit.cause.error.cause;
  }));
  assert.equal(outcomes.filter((o) => o === "live").length, 8);
  assert.deepEqual(
    [...new Set(outcomes.filter((o) => o !== "live"))],
    ["too many live pulls on this socket"],
  );
  // Ending one frees its slot (once established: its last initial page went out).
  const first = ids[outcomes.indexOf("live")]!;
  await socket.next((f) =>
    f.requestId === first && f._tag === "Chunk" && f.values[0].pageInfo._tag === "NoMore"
  );
  socket.send({ _tag: "Interrupt", requestId: first, interruptors: [] });
  await socket.exit(first);
  const again = socket.pull("burst", { live: true });
  assert.equal((await socket.next((f) => f.requestId === again))._tag, "Chunk");
});

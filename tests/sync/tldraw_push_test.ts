/**
 * Raw-socket tests of pushes: push_result actions, clocks, validation, read-only sessions (spec 3–5).
 */
import assert from "node:assert/strict";
import { connectRaw, geoShape, openRaw, type RawSocket } from "../helpers/raw_socket.ts";
import { startTestServer } from "../helpers/server.ts";

let nextClock = 0;
/** Sends a push and waits for its push_result. */
async function push(socket: RawSocket, body: Record<string, unknown>) {
  const clientClock = nextClock++;
  socket.send({ type: "push", clientClock, ...body });
  return await socket.waitForEvent((e) =>
    e.type === "push_result" && e.clientClock === clientClock
  );
}

Deno.test("push_result sequence: commit, discard, append, wrong append, remove, identical put, typeName change", async () => {
  await using server = await startTestServer();
  const url = `${server.wsUrl}/r/seq`;
  const pusher = await connectRaw(`${url}?sessionId=p`);
  const observer = await connectRaw(`${url}?sessionId=o`);
  await using _p = pusher.socket;
  await using _o = observer.socket;
  const p = pusher.socket;
  const shapeA = geoShape("shape:a");

  const results = [
    await push(p, { diff: { "shape:a": ["put", shapeA] } }),
    await push(p, { diff: { "shape:missing": ["patch", { x: ["put", 5] }] } }),
    await push(p, { diff: { "page:page": ["patch", { name: ["append", "zz", 6] }] } }),
    await push(p, { diff: { "page:page": ["patch", { name: ["append", "yy", 3] }] } }),
    await push(p, { diff: { "shape:a": ["remove"] } }),
    await push(p, {
      diff: {
        "page:page": ["put", {
          id: "page:page",
          typeName: "page",
          name: "Page 1zz",
          index: "a1",
          meta: {},
        }],
      },
    }),
    await push(p, { diff: { "page:page": ["put", { ...geoShape("page:page") }] } }),
  ];
  assert.deepEqual(results.map((r) => r.action), [
    "commit",
    "discard",
    "commit",
    "discard",
    "commit",
    "discard",
    "discard",
  ]);
  assert.deepEqual(results.map((r) => r.serverClock), [1, 1, 2, 2, 3, 3, 3]);

  // A put over an existing record is stored as a patch: the pusher gets rebaseWithDiff.
  const rebased = await push(p, {
    diff: {
      "page:page": ["put", {
        id: "page:page",
        typeName: "page",
        name: "New",
        index: "a1",
        meta: {},
      }],
    },
  });
  assert.deepEqual(rebased.action, {
    rebaseWithDiff: { "page:page": ["patch", { name: ["put", "New"] }] },
  });
  assert.equal(rebased.serverClock, 4);

  // The observer saw exactly the effective changes, clocks strictly increasing without gaps.
  await observer.socket.waitForEvent((e) => e.type === "patch" && e.serverClock === 4);
  const patches = observer.socket.dataEvents().filter((e) => e.type === "patch");
  assert.deepEqual(patches.map((e) => e.serverClock), [1, 2, 3, 4]);
  assert.deepEqual(patches[0].diff, { "shape:a": ["put", shapeA] });
  assert.deepEqual(patches[1].diff, { "page:page": ["patch", { name: ["append", "zz", 6] }] });
  assert.deepEqual(patches[2].diff, { "shape:a": ["remove"] });
  // The pusher never receives its own changes as a patch.
  assert.equal(p.dataEvents().filter((e) => e.type === "patch").length, 0);
});

Deno.test("an invalid record closes only its session with INVALID_RECORD and stores nothing", async () => {
  await using server = await startTestServer();
  const url = `${server.wsUrl}/r/inv`;
  const bad = await connectRaw(`${url}?sessionId=bad`);
  const good = await connectRaw(`${url}?sessionId=good`);
  await using _b = bad.socket;
  await using _g = good.socket;
  bad.socket.send({
    type: "push",
    clientClock: 0,
    diff: {
      "shape:ok": ["put", geoShape("shape:ok")],
      "shape:bad": ["put", geoShape("shape:bad", { x: "not a number" })],
    },
  });
  assert.deepEqual(await bad.socket.closed, { code: 4099, reason: "INVALID_RECORD" });
  // The other session works on, and neither record was stored.
  const result = await push(good.socket, { diff: { "shape:c": ["put", geoShape("shape:c")] } });
  assert.equal(result.action, "commit");
  assert.equal(result.serverClock, 1);
  const late = await connectRaw(`${url}?sessionId=late`);
  await using _l = late.socket;
  assert.deepEqual(Object.keys(late.reply.diff).sort(), [
    "document:document",
    "page:page",
    "shape:c",
  ]);
});

Deno.test("a non-document record type in a push is INVALID_RECORD", async () => {
  await using server = await startTestServer();
  const { socket } = await connectRaw(`${server.wsUrl}/r/inv2?sessionId=s`);
  await using _ = socket;
  socket.send({
    type: "push",
    clientClock: 0,
    diff: {
      "camera:x": ["put", { id: "camera:x", typeName: "camera", x: 0, y: 0, z: 1, meta: {} }],
    },
  });
  assert.deepEqual(await socket.closed, { code: 4099, reason: "INVALID_RECORD" });
});

Deno.test("a diff key that differs from the record id is UNKNOWN_ERROR", async () => {
  await using server = await startTestServer();
  const { socket } = await connectRaw(`${server.wsUrl}/r/inv3?sessionId=s`);
  await using _ = socket;
  socket.send({ type: "push", clientClock: 0, diff: { "shape:x": ["put", geoShape("shape:y")] } });
  assert.deepEqual(await socket.closed, { code: 4099, reason: "UNKNOWN_ERROR" });
});

Deno.test("a patch that changes a record's id or typeName closes only its session and stores nothing", async () => {
  await using server = await startTestServer();
  const url = `${server.wsUrl}/r/rename`;
  const canary = await connectRaw(`${url}?sessionId=canary`);
  await using _c = canary.socket;
  const seeded = await push(canary.socket, {
    diff: {
      "shape:A": ["put", geoShape("shape:A", { x: 1 })],
      "shape:B": ["put", geoShape("shape:B", { x: 2 })],
    },
  });
  assert.equal(seeded.action, "commit");
  // As the reference: the patched record is validated first (a shape turned into a page is not a
  // valid page: INVALID_RECORD), then stored under its key (another id: UNKNOWN_ERROR).
  const patches: [Record<string, unknown>, string][] = [
    [{ "shape:A": ["patch", { id: ["put", "shape:B"] }] }, "UNKNOWN_ERROR"],
    [{ "shape:A": ["patch", { id: ["put", "shape:C"], x: ["put", 9] }] }, "UNKNOWN_ERROR"],
    [{ "shape:A": ["patch", { typeName: ["put", "page"] }] }, "INVALID_RECORD"],
    // Valid ops before the bad one are not kept either.
    [{
      "shape:B": ["patch", { x: ["put", 50] }],
      "shape:A": ["patch", { id: ["put", "shape:B"] }],
    }, "UNKNOWN_ERROR"],
  ];
  for (const [round, [diff, reason]] of patches.entries()) {
    const attacker = await connectRaw(`${url}?sessionId=attacker-${crypto.randomUUID()}`);
    await using _a = attacker.socket;
    const before = canary.socket.frames.length;
    attacker.socket.send({ type: "push", clientClock: 0, diff });
    assert.deepEqual(await attacker.socket.closed, { code: 4099, reason });
    // The canary received no document change, and its own pushes still commit.
    const result = await push(canary.socket, {
      diff: { "shape:A": ["patch", { y: ["put", round + 1] }] },
    });
    assert.equal(result.action, "commit");
    const received = canary.socket.frames.slice(before).flatMap((frame) =>
      frame.type === "data" ? frame.data : [frame]
    ).filter((event) => event.type === "patch");
    assert.deepEqual(received, [], JSON.stringify(diff));
  }
  // A fresh read of the room: A and B under their own ids, with their own content.
  const late = await connectRaw(`${url}?sessionId=late`);
  await using _l = late.socket;
  const records = late.reply.diff as Record<string, [string, Record<string, unknown>]>;
  assert.deepEqual(Object.keys(records).filter((id) => id.startsWith("shape:")).sort(), [
    "shape:A",
    "shape:B",
  ]);
  assert.equal(records["shape:A"]![1].id, "shape:A");
  assert.equal(records["shape:A"]![1].x, 1);
  assert.equal(records["shape:B"]![1].id, "shape:B");
  assert.equal(records["shape:B"]![1].x, 2);
  assert.equal(records["shape:A"]![1].typeName, "shape");
});

Deno.test("read-only sessions: document ops are discarded, presence is accepted and broadcast", async () => {
  await using server = await startTestServer();
  const writer = await connectRaw(`${server.wsUrl}/r/ro1?sessionId=w`);
  await using _w = writer.socket;
  for (const prefix of ["ro", "v"]) {
    const reader = await connectRaw(`${server.wsUrl}/${prefix}/ro1?sessionId=r-${prefix}`);
    await using _r = reader.socket;
    assert.equal(reader.reply.isReadonly, true);
    const result = await push(reader.socket, {
      diff: {
        "shape:ro": ["put", geoShape("shape:ro")],
        "page:page": ["remove"],
      },
      presence: ["put", presenceRecord("instance_presence:mine")],
    });
    assert.equal(result.action, "discard");
    assert.equal(result.serverClock, 0);
    const patch = await writer.socket.waitForEvent((e) =>
      e.type === "patch" && Object.keys(e.diff).some((id) => id.startsWith("instance_presence:"))
    );
    // Presence gets a server-assigned id; nothing of the document reached the writer.
    const ids = Object.keys(patch.diff);
    assert.equal(ids.length, 1);
    assert.notEqual(ids[0], "instance_presence:mine");
    assert.equal(patch.serverClock, 0);
  }
  assert.equal(writer.socket.dataEvents().some((e) => e.diff?.["shape:ro"]), false);
});

Deno.test("presence never moves the clock; invalid presence is INVALID_RECORD", async () => {
  await using server = await startTestServer();
  const a = await connectRaw(`${server.wsUrl}/r/pres?sessionId=a`);
  const b = await connectRaw(`${server.wsUrl}/r/pres?sessionId=b`);
  await using _a = a.socket;
  await using _b = b.socket;
  const first = await push(a.socket, { presence: ["put", presenceRecord("instance_presence:a")] });
  assert.equal(first.action, "commit");
  assert.equal(first.serverClock, 0);
  const moved = await push(a.socket, {
    presence: ["patch", { cursor: ["patch", { x: ["put", 42] }] }],
  });
  assert.equal(moved.serverClock, 0);
  const patch = await b.socket.waitForEvent((e) =>
    e.type === "patch" && Object.values(e.diff).some((op) => (op as unknown[])[0] === "patch")
  );
  const [, diff] = Object.values(patch.diff)[0] as [string, Record<string, unknown>];
  // Objects outside props/meta are replaced whole when they change (spec 3.3).
  assert.deepEqual(diff, { cursor: ["put", { x: 42, y: 0, type: "default", rotation: 0 }] });
  a.socket.send({
    type: "push",
    clientClock: 99,
    presence: ["put", { ...presenceRecord("instance_presence:a"), cursor: "nope" }],
  });
  assert.deepEqual(await a.socket.closed, { code: 4099, reason: "INVALID_RECORD" });
});

Deno.test("push and ping before connect are ignored; ping after connect gets a top-level pong", async () => {
  await using server = await startTestServer();
  await using socket = await openRaw(`${server.wsUrl}/r/early?sessionId=s`);
  socket.send({ type: "ping" });
  socket.send({ type: "push", clientClock: 0, diff: { "shape:e": ["put", geoShape("shape:e")] } });
  socket.send({
    type: "connect",
    connectRequestId: "c1",
    lastServerClock: -1,
    protocolVersion: 8,
    schema: (await import("../helpers/raw_socket.ts")).currentSchema,
  });
  const reply = await socket.waitFor((f) => f.type === "connect");
  assert.equal(reply.serverClock, 0);
  assert.equal(reply.diff["shape:e"], undefined);
  assert.equal(socket.frames.length, 1);
  socket.send({ type: "ping" });
  await socket.waitFor((f) => f.type === "pong");
});

function presenceRecord(id: string): Record<string, unknown> {
  return {
    id,
    typeName: "instance_presence",
    userId: "user:u1",
    userName: "Ann",
    lastActivityTimestamp: 1,
    color: "#ff0000",
    camera: { x: 0, y: 0, z: 1 },
    selectedShapeIds: [],
    currentPageId: "page:page",
    brush: null,
    scribbles: [],
    screenBounds: { x: 0, y: 0, w: 100, h: 100 },
    followingUserId: null,
    cursor: { x: 0, y: 0, type: "default", rotation: 0 },
    chatMessage: "",
    meta: {},
  };
}

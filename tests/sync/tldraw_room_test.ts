/**
 * Engine tests without HTTP: timers (short, injected), presence removal, reconnects, batching, and
 * two isolates sharing one KV room (lost commit races, catch-up, restart).
 */
import assert from "node:assert/strict";
import { FakeSocket, sleep, until } from "../helpers/fake_socket.ts";
import { connectRequest, geoShape } from "../helpers/raw_socket.ts";
import { KvRoomStore } from "../../sync/tldraw/kv_room_store.ts";
import { withLockedRetry } from "../../sync/tldraw/locked_retry.ts";
import { MemoryRoomStore } from "../../sync/tldraw/memory_room_store.ts";
import { observedStore } from "../../sync/tldraw/observed_store.ts";
import { type RoomOptions, TldrawRoom } from "../../sync/tldraw/room.ts";
import type { RoomStore } from "../../sync/tldraw/room_store.ts";
import { presenceRecord } from "../helpers/raw_socket.ts";
import { withOverrides } from "../helpers/overrides.ts";

const FAST = { connect: 100, idle: 150, removal: 100, prune: 20, batch: 16 };

async function withRoom(
  fn: (room: TldrawRoom, store: RoomStore) => Promise<void>,
  options: Partial<RoomOptions> = {},
) {
  const store = options.store ?? new MemoryRoomStore();
  const room = await TldrawRoom.load({ roomId: "r", store, timeouts: FAST, ...options });
  try {
    await fn(room, store);
  } finally {
    await room.close();
  }
}

async function join(room: TldrawRoom, sessionId: string, extra: Record<string, unknown> = {}) {
  const socket = new FakeSocket();
  room.attach(socket, { sessionId, isReadonly: false });
  room.handleMessage(socket, JSON.stringify(connectRequest(extra)));
  await until(() => socket.sent.some((f) => f.type === "connect"));
  return socket;
}

function send(room: TldrawRoom, socket: FakeSocket, message: Record<string, unknown>) {
  room.handleMessage(socket, JSON.stringify(message));
}

const presence = presenceRecord;

Deno.test("a socket that never sends connect is closed after the connect timeout", async () => {
  await withRoom(async (room) => {
    const socket = new FakeSocket();
    room.attach(socket, { sessionId: "s", isReadonly: false });
    await sleep(50);
    assert.equal(socket.closedWith, null);
    await until(() => socket.closedWith !== null);
    assert.deepEqual(socket.closedWith, { code: undefined, reason: undefined });
    await until(() => room.sessionCount === 0);
  });
});

Deno.test("an idle connected session is closed; pings keep it alive", async () => {
  // Generous margins: a loaded machine may stretch each 50 ms sleep several times over.
  const idleMs = 500;
  await withRoom(async (room) => {
    const idle = await join(room, "idle");
    const busy = await join(room, "busy");
    const started = Date.now();
    let pings = 0;
    while (Date.now() - started < idleMs * 2) {
      send(room, busy, { type: "ping" });
      pings++;
      await sleep(50);
    }
    await until(() => idle.closedWith !== null);
    assert.equal(busy.closedWith, null);
    assert.equal(busy.sent.filter((f) => f.type === "pong").length, pings);
  }, { timeouts: { ...FAST, idle: idleMs } });
});

Deno.test("presence is broadcast and removed for everyone after the removal wait", async () => {
  await withRoom(async (room) => {
    const a = await join(room, "a");
    const b = await join(room, "b");
    send(room, a, { type: "push", clientClock: 0, presence: ["put", presence(1)] });
    await until(() => b.dataEvents().some((e) => e.type === "patch"));
    const presenceId = Object.keys(b.dataEvents()[0].diff)[0]!;
    assert.match(presenceId, /^instance_presence:/);
    // A late joiner gets the presence in its connect diff.
    const c = await join(room, "c");
    assert.ok(c.sent[0].diff[presenceId]);

    a.close();
    room.handleClose(a);
    await sleep(FAST.removal / 2);
    assert.equal(b.dataEvents().some((e) => e.diff?.[presenceId]?.[0] === "remove"), false);
    await until(() => b.dataEvents().some((e) => e.diff?.[presenceId]?.[0] === "remove"));
    assert.equal(room.getPresences().length, 0);
  });
});

Deno.test("a reconnect with the same sessionId survives the old socket's late close", async () => {
  await withRoom(async (room) => {
    const observer = await join(room, "obs");
    const old = await join(room, "tab");
    send(room, old, { type: "push", clientClock: 0, presence: ["put", presence(1)] });
    await until(() => observer.dataEvents().length > 0);
    const presenceId = Object.keys(observer.dataEvents()[0].diff)[0]!;

    const fresh = await join(room, "tab", { lastServerClock: 0 });
    // The old socket's close arrives after the new one connected.
    old.close();
    room.handleClose(old);
    await sleep(FAST.removal * 2);
    assert.equal(fresh.closedWith, null);
    send(room, fresh, {
      type: "push",
      clientClock: 0,
      diff: { "shape:x": ["put", geoShape("shape:x")] },
      presence: ["put", presence(2)],
    });
    await until(() => fresh.dataEvents().some((e) => e.type === "push_result"));
    assert.equal(fresh.dataEvents()[0].action, "commit");
    // The presence id is kept across the reconnect, and was never removed.
    await until(() => observer.dataEvents().some((e) => e.diff?.["shape:x"]));
    const last = observer.dataEvents().at(-1);
    assert.ok(last.diff[presenceId]);
    assert.equal(observer.dataEvents().some((e) => e.diff?.[presenceId]?.[0] === "remove"), false);
  }, { timeouts: { ...FAST, idle: 5_000 } });
});

Deno.test("data events are batched per session: a committed group is one frame, presence uses the window", async () => {
  await withRoom(async (room) => {
    const pusher = await join(room, "p");
    const observer = await join(room, "o");
    for (let i = 0; i < 5; i++) {
      send(room, pusher, {
        type: "push",
        clientClock: i,
        diff: { [`shape:${i}`]: ["put", geoShape(`shape:${i}`)] },
      });
    }
    await until(() => observer.dataEvents().length === 5);
    // One group, one commit: each session gets the group's events as one frame, at once.
    const frames = () => observer.sent.filter((f) => f.type === "data").map((f) => f.data.length);
    assert.deepEqual(frames(), [5]);
    assert.deepEqual(observer.dataEvents().map((e) => e.serverClock), [1, 2, 3, 4, 5]);
    assert.deepEqual(pusher.dataEvents().map((e) => e.clientClock), [0, 1, 2, 3, 4]);
    // Presence does not commit: the first event goes out at once, the rest within the window.
    for (let i = 5; i < 10; i++) {
      send(room, pusher, { type: "push", clientClock: i, presence: ["put", presence(i)] });
      await room.idle();
    }
    await until(() => observer.dataEvents().length === 10);
    assert.deepEqual(frames(), [5, 1, 4]);
    assert.deepEqual(pusher.dataEvents().map((e) => e.clientClock), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  }, { timeouts: { ...FAST, idle: 5_000, batch: 200 } });
});

Deno.test("a push that keeps losing commit races is retried, not given up (the session stays open)", async () => {
  const inner = new MemoryRoomStore();
  // Another writer commits first, 30 times in a row (more than the old limit of 20 attempts).
  let races = 30;
  let attempts = 0;
  const commitSteps: RoomStore["commitSteps"] = async (roomId, expectedClock, steps) => {
    attempts++;
    if (races > 0) {
      races--;
      const other = { puts: [{ record: geoShape(`shape:other${races}`) }], deletes: [] };
      await inner.commitSteps(roomId, expectedClock, [other as never]);
    }
    return inner.commitSteps(roomId, expectedClock, steps);
  };
  const store = withOverrides(inner, { commitSteps });
  await withRoom(async (room) => {
    const a = await join(room, "a");
    send(room, a, {
      type: "push",
      clientClock: 0,
      diff: { "shape:a": ["put", geoShape("shape:a")] },
    });
    await until(() => a.dataEvents().some((e) => e.type === "push_result"), 10_000);
    const result = a.dataEvents().find((e) => e.type === "push_result");
    assert.equal(result.action, "commit");
    assert.equal(attempts, 31);
    assert.equal(a.closedWith, null);
    assert.ok(room.getRecord("shape:a"));
    assert.ok(room.getRecord("shape:other0"), "the winners' changes were taken in");
  }, { store, timeouts: { ...FAST, idle: 20_000 } });
});

Deno.test("two isolates on one KV room: a lost commit race catches up, re-validates and retries", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const one = await TldrawRoom.load({ roomId: "r", store: new KvRoomStore(kv), timeouts: FAST });
    const two = await TldrawRoom.load({ roomId: "r", store: new KvRoomStore(kv), timeouts: FAST });
    try {
      const a = await join(one, "a");
      const b = await join(two, "b");
      const bObserver = await join(two, "b2");
      send(one, a, {
        type: "push",
        clientClock: 0,
        diff: { "shape:a": ["put", geoShape("shape:a")] },
      });
      await until(() => a.dataEvents().length === 1);
      assert.equal(a.dataEvents()[0].serverClock, 1);
      // Isolate two still believes the clock is 0: its commit loses, catches up and retries.
      send(two, b, {
        type: "push",
        clientClock: 0,
        diff: { "shape:b": ["put", geoShape("shape:b")] },
      });
      await until(() => b.dataEvents().some((e) => e.type === "push_result"));
      const events = b.dataEvents();
      assert.deepEqual(events.map((e) => [e.type, e.serverClock]), [["patch", 1], [
        "push_result",
        2,
      ]]);
      assert.ok(events[0].diff["shape:a"]);
      assert.equal(events[1].action, "commit");
      await until(() => bObserver.dataEvents().length === 2);
      assert.deepEqual(bObserver.dataEvents().map((e) => e.serverClock), [1, 2]);
      // Isolate one learns about clock 2 through catchUp (what the bus will trigger).
      await one.catchUp();
      assert.equal(one.clock, 2);
      assert.ok(one.getRecord("shape:b"));
    } finally {
      await one.close();
      await two.close();
    }
    // A restart (a fresh load from KV) has every acknowledged change.
    const restarted = await TldrawRoom.load({ roomId: "r", store: new KvRoomStore(kv) });
    assert.equal(restarted.clock, 2);
    assert.deepEqual(restarted.getRecords().map((r) => r.id).sort(), [
      "document:document",
      "page:page",
      "shape:a",
      "shape:b",
    ]);
    await restarted.close();
  } finally {
    kv.close();
  }
});

Deno.test("reconnect after deletes with an old clock gets wipe_presence with removes", async () => {
  await withRoom(async (room) => {
    const a = await join(room, "a");
    send(room, a, {
      type: "push",
      clientClock: 0,
      diff: { "shape:x": ["put", geoShape("shape:x")] },
    });
    send(room, a, {
      type: "push",
      clientClock: 1,
      diff: { "shape:y": ["put", geoShape("shape:y")] },
    });
    send(room, a, { type: "push", clientClock: 2, diff: { "shape:x": ["remove"] } });
    await until(() => a.dataEvents().length === 3);
    const b = await join(room, "b", { lastServerClock: 1 });
    const reply = b.sent[0];
    assert.equal(reply.hydrationType, "wipe_presence");
    assert.equal(reply.serverClock, 3);
    assert.deepEqual(Object.keys(reply.diff).sort(), ["shape:x", "shape:y"]);
    assert.deepEqual(reply.diff["shape:x"], ["remove"]);
    assert.equal(reply.diff["shape:y"][0], "put");
  });
});

Deno.test("tombstones older than the history cutoff force wipe_all", async () => {
  const store = new MemoryRoomStore();
  await withRoom(async (room) => {
    const a = await join(room, "a");
    send(room, a, {
      type: "push",
      clientClock: 0,
      diff: { "shape:x": ["put", geoShape("shape:x")] },
    });
    send(room, a, { type: "push", clientClock: 1, diff: { "shape:x": ["remove"] } });
    await until(() => a.dataEvents().length === 2);
    assert.equal(await store.pruneTombstones("r", 2, 2), true);
  }, { store });
  await withRoom(async (room) => {
    const b = await join(room, "b", { lastServerClock: 1 });
    assert.equal(b.sent[0].hydrationType, "wipe_all");
    assert.equal(b.sent[0].diff["shape:x"], undefined);
  }, { store });
});

Deno.test("tombstones above the maximum are pruned and the history cutoff moves", async () => {
  const store = new MemoryRoomStore();
  await withRoom(async (room) => {
    const a = await join(room, "a");
    let clientClock = 0;
    for (let i = 0; i < 6; i++) {
      send(room, a, {
        type: "push",
        clientClock: clientClock++,
        diff: { [`shape:${i}`]: ["put", geoShape(`shape:${i}`)] },
      });
      send(room, a, {
        type: "push",
        clientClock: clientClock++,
        diff: { [`shape:${i}`]: ["remove"] },
      });
    }
    await until(() => a.dataEvents().length === 12);
    await room.idle();
    // 6 deletes at clocks 2,4,…,12; max 4 + buffer 1 → the 3 oldest go, history starts at 8.
    const data = await store.load("r");
    assert.deepEqual([...data!.tombstones.keys()].sort(), ["shape:3", "shape:4", "shape:5"]);
    assert.equal(data!.meta.tombstoneHistoryStartsAtClock, 8);
    const old = await join(room, "old", { lastServerClock: 6 });
    assert.equal(old.sent[0].hydrationType, "wipe_all");
    const recent = await join(room, "recent", { lastServerClock: 8 });
    assert.equal(recent.sent[0].hydrationType, "wipe_presence");
    assert.deepEqual(Object.keys(recent.sent[0].diff).sort(), ["shape:4", "shape:5"]);
  }, {
    store,
    limits: { maxTombstones: 4, tombstonePruneBuffer: 1 },
    timeouts: { ...FAST, idle: 5_000 },
  });
});

Deno.test("the session limit holds across isolates sharing one KV", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const limits = { maxSessions: 2 };
    const one = await TldrawRoom.load({ roomId: "r", store: new KvRoomStore(kv), limits });
    const two = await TldrawRoom.load({ roomId: "r", store: new KvRoomStore(kv), limits });
    try {
      await join(one, "a");
      await join(two, "b");
      const third = new FakeSocket();
      one.attach(third, { sessionId: "c", isReadonly: false });
      await until(() => third.closedWith !== null);
      assert.deepEqual(third.closedWith, { code: 4099, reason: "ROOM_FULL" });
    } finally {
      await one.close();
      await two.close();
    }
  } finally {
    kv.close();
  }
});

Deno.test("server-side updates are validated, committed and broadcast to every session", async () => {
  await withRoom(async (room, store) => {
    const a = await join(room, "a");
    await room.updateDocument((records) => ({
      puts: [{ ...records.find((r) => r.id === "page:page")!, name: "Renamed" }],
      removes: ["document:missing"],
    }));
    await until(() => a.dataEvents().length === 1);
    assert.deepEqual(a.dataEvents()[0], {
      type: "patch",
      serverClock: 1,
      diff: { "page:page": ["patch", { name: ["put", "Renamed"] }] },
    });
    assert.equal(await store.readClock("r"), 1);
    await assert.rejects(
      room.updateDocument(() => ({ puts: [geoShape("shape:bad", { x: "no" }) as never] })),
    );
    assert.equal(room.clock, 1);
  }, { timeouts: { ...FAST, idle: 5_000 } });
});

Deno.test("the manager unloads a room when its last session is removed", async () => {
  const { RoomManager } = await import("../../sync/tldraw/room_manager.ts");
  const { silentLogger } = await import("../../log.ts");
  const manager = new RoomManager({
    store: new MemoryRoomStore(),
    log: silentLogger,
    timeouts: { ...FAST, idle: 5_000 },
  });
  try {
    const socket = new FakeSocket();
    const connection = manager.connect("r", socket, { sessionId: "a", isReadonly: false });
    connection.message(JSON.stringify(connectRequest()));
    await until(() => socket.sent.length === 1);
    assert.equal(manager.size, 1);
    socket.close();
    connection.close();
    await until(() => manager.size === 0);
  } finally {
    await manager.close();
  }
});

Deno.test("an admission check can refuse a socket with a 4099 reason, or admit it read-only", async () => {
  const { RoomManager, RoomAccessDenied } = await import("../../sync/tldraw/room_manager.ts");
  const { silentLogger } = await import("../../log.ts");
  const manager = new RoomManager({ store: new MemoryRoomStore(), log: silentLogger });
  try {
    const refused = new FakeSocket();
    manager.connect("r", refused, Promise.reject(new RoomAccessDenied("FORBIDDEN")));
    await until(() => refused.closedWith !== null);
    assert.deepEqual(refused.closedWith, { code: 4099, reason: "FORBIDDEN" });

    const admitted = new FakeSocket();
    const check = new Promise<{ sessionId: string; isReadonly: boolean }>((resolve) =>
      setTimeout(() => resolve({ sessionId: "v", isReadonly: true }), 20)
    );
    const connection = manager.connect("r", admitted, check);
    // Frames sent before the check finished are handled after it, in order.
    connection.message(JSON.stringify(connectRequest()));
    await until(() => admitted.sent.length === 1);
    assert.equal(admitted.sent[0].isReadonly, true);
    admitted.close();
    connection.close();
  } finally {
    await manager.close();
  }
});

Deno.test("closing a big room stores a compacted snapshot; the next load reads it and has every record", async () => {
  await using kv = await Deno.openKv(":memory:");
  // As the server composes it (sync/tldraw/setup.ts): the wrappers must pass the snapshot through.
  const store = observedStore(withLockedRetry(new KvRoomStore(kv)));
  const room = await TldrawRoom.load({ roomId: "r", store, timeouts: FAST });
  const shapes = Array.from({ length: 150 }, (_, i) => geoShape(`shape:s${i}`, { x: i }));
  await room.updateDocument(() => ({ puts: shapes as never }));
  const ids = room.getRecords().map((r) => r.id).sort();
  await room.close();
  assert.ok((await kv.get(["tldraw", "r", "snap"])).value, "snapshot written on close");
  const again = await TldrawRoom.load({ roomId: "r", store: new KvRoomStore(kv), timeouts: FAST });
  try {
    assert.deepEqual(again.getRecords().map((r) => r.id).sort(), ids);
    assert.equal(again.clock, room.clock);
    assert.deepEqual(again.getRecord("shape:s7"), room.getRecord("shape:s7"));
  } finally {
    await again.close();
  }
});

Deno.test("a room alone reads the store's clock and session entries less often, until another isolate shows up", async () => {
  const reads = { steps: 0, sessions: 0 };
  class CountingStore extends MemoryRoomStore {
    override stepsSince(roomId: string, clock: number) {
      reads.steps++;
      return super.stepsSince(roomId, clock);
    }
    override listSessions(roomId: string) {
      reads.sessions++;
      return super.listSessions(roomId);
    }
  }
  const store = new CountingStore();
  const timeouts = { ...FAST, idle: 60_000, poll: 40, presenceSweep: 40 };
  await withRoom(async (room) => {
    await join(room, "here");
    const counted = async (ms: number) => {
      const before = { ...reads };
      await sleep(ms);
      return { steps: reads.steps - before.steps, sessions: reads.sessions - before.sessions };
    };
    // Alone: every fifth poll (1,000 / 40 / 5 ≈ 5 in a second) and as few sweeps.
    const alone = await counted(1_000);
    assert.ok(alone.steps >= 2 && alone.steps <= 8, `alone: ${alone.steps} clock polls`);
    assert.ok(alone.sessions <= 8, `alone: ${alone.sessions} sweeps`);

    // Another isolate's session entry: the next sweep sees it, and polls go at the full rate.
    const now = Date.now();
    await store.putSession("r", {
      sessionId: "far",
      isolateId: "another-isolate",
      lastSeen: now,
      expiresAt: now + 60_000,
    }, 60_000);
    await sleep(400);
    const shared = await counted(1_000);
    assert.ok(shared.steps >= 12, `with a peer: ${shared.steps} clock polls`);
    assert.ok(shared.sessions >= 10, `with a peer: ${shared.sessions} sweeps`);
  }, { store, timeouts });
});

Deno.test("a room that keeps committing skips its clock polls, and still sees a commit whose notice was lost", async () => {
  let polls = 0;
  class CountingStore extends MemoryRoomStore {
    override stepsSince(roomId: string, clock: number) {
      polls++;
      return super.stepsSince(roomId, clock);
    }
  }
  const store = new CountingStore();
  // Polls at the alone rate: every 5 × 20 ms.
  const timeouts = { ...FAST, idle: 60_000, poll: 20 };
  await withRoom(async (room) => {
    const pusher = await join(room, "pusher");
    let clientClock = 0;
    const pushMove = () =>
      send(room, pusher, {
        type: "push",
        clientClock: clientClock++,
        diff: { "shape:mine": ["put", geoShape("shape:mine", { x: clientClock })] },
      });
    const pushFor = async (ms: number) => {
      const until = Date.now() + ms;
      while (Date.now() < until) {
        pushMove();
        await sleep(10);
      }
    };
    await pushFor(100);
    polls = 0;
    await pushFor(1_000);
    assert.ok(polls <= 1, `busy: ${polls} clock polls`);
    // Idle, it polls again (1,000 / 100 ≈ 10).
    polls = 0;
    await sleep(1_000);
    assert.ok(polls >= 5, `idle: ${polls} clock polls`);

    // Another isolate commits, and its notice never comes: the next local commit fails its clock
    // check and catches up.
    const foreign = geoShape("shape:foreign");
    const result = await store.commitSteps("r", room.clock, [{
      puts: [{ record: foreign as never, prev: undefined }],
      deletes: [],
    }]);
    assert.ok(result.ok);
    polls = 0;
    pushMove();
    await until(() => pusher.dataEvents().some((e) => e.diff?.["shape:foreign"]), 2_000);
    assert.ok(room.getRecord("shape:foreign"));
  }, { store, timeouts });
});

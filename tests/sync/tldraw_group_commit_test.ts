/**
 * Group commit inside a room: pushes queued while a commit is in flight are planned in arrival
 * order and committed with one store write, one clock step per changing push (spec 5, 5.4).
 */
import assert from "node:assert/strict";
import { FakeSocket, until } from "../helpers/fake_socket.ts";
import { connectRequest, geoShape } from "../helpers/raw_socket.ts";
import { KvRoomStore } from "../../sync/tldraw/kv_room_store.ts";
import { TldrawRoom } from "../../sync/tldraw/room.ts";
import type { RoomStore } from "../../sync/tldraw/room_store.ts";
import { withOverrides } from "../helpers/overrides.ts";
import { isDatabaseLocked, withLockedRetry } from "../../sync/tldraw/locked_retry.ts";
import { jitteryKv } from "../helpers/jittery_kv.ts";
import { withKvMethods } from "../../sync/kv_write_lock.ts";
import { MAX_GROUP_PUSHES } from "../../sync/tldraw/push_group.ts";
import { PACED_GROUP } from "../../sync/tldraw/group_commit.ts";

const FAST = { connect: 1_000, idle: 5_000, removal: 100, prune: 20, batch: 16, poll: 0 };

/** Wraps a store, counting its commits (`commitSteps` calls). */
function counting(store: RoomStore): { store: RoomStore; commits: () => number } {
  let commits = 0;
  const wrapped = withOverrides(store, {
    commitSteps: (...args) => {
      commits++;
      return store.commitSteps(...args);
    },
  });
  return { store: wrapped, commits: () => commits };
}

async function join(room: TldrawRoom, sessionId: string) {
  const socket = new FakeSocket();
  room.attach(socket, { sessionId, isReadonly: false });
  room.handleMessage(socket, JSON.stringify(connectRequest()));
  await until(() => socket.sent.some((f) => f.type === "connect"));
  return socket;
}

function push(room: TldrawRoom, socket: FakeSocket, clientClock: number, diff: unknown) {
  room.handleMessage(socket, JSON.stringify({ type: "push", clientClock, diff }));
}

Deno.test("50 back-to-back pushes from several sessions: results in order, consecutive clocks, fewer commits", async () => {
  await using kv = await Deno.openKv(":memory:");
  const { store, commits } = counting(new KvRoomStore(kv));
  const room = await TldrawRoom.load({ roomId: "r", store, timeouts: FAST });
  try {
    const pushers = [await join(room, "a"), await join(room, "b"), await join(room, "c")];
    const observer = await join(room, "o");
    const before = commits();
    const sent: number[][] = [[], [], []];
    for (let n = 0; n < 50; n++) {
      const i = n % 3;
      const clientClock = sent[i]!.length;
      sent[i]!.push(clientClock);
      // Every fifth push changes a shape pushed before (by another session), in the same group.
      const diff = n % 5 === 4
        ? { [`shape:${n - 1}`]: ["patch", { x: ["put", n] }] }
        : { [`shape:${n}`]: ["put", geoShape(`shape:${n}`)] };
      push(room, pushers[i]!, clientClock, diff);
    }
    await until(() => observer.dataEvents().length === 50);
    await room.idle();
    pushers.forEach((socket, i) => {
      const results = socket.dataEvents().filter((e) => e.type === "push_result");
      assert.deepEqual(results.map((e) => e.clientClock), sent[i]);
      assert.ok(results.every((e) => e.action === "commit"));
    });
    // One clock step per push, consecutive, seen by the observer in order.
    assert.deepEqual(
      observer.dataEvents().map((e) => e.serverClock),
      Array.from({ length: 50 }, (_, n) => n + 1),
    );
    assert.equal(room.clock, 50);
    const used = commits() - before;
    assert.ok(used < 50, `${used} commits for 50 pushes`);
    // Everything is stored, and the change log still has one step per clock.
    const loaded = (await store.load("r"))!;
    assert.equal(loaded.meta.documentClock, 50);
    const shapes = loaded.records.filter((r) => r.state.typeName === "shape");
    assert.equal(shapes.length, 40);
    assert.equal(shapes.find((r) => r.state.id === "shape:3")?.state.x, 4);
    const steps = await store.stepsSince("r", 0);
    assert.equal(steps.kind, "steps");
    if (steps.kind === "steps") {
      assert.deepEqual(
        steps.steps.map((s) => s.clock),
        observer.dataEvents().map((e) => e.serverClock),
      );
    }
    // A second isolate loading the room sees the same document.
    const other = await TldrawRoom.load({
      roomId: "r",
      store: new KvRoomStore(kv),
      timeouts: FAST,
    });
    assert.equal(other.clock, 50);
    assert.deepEqual(
      other.getRecords().map((r) => r.id).sort(),
      room.getRecords().map((r) => r.id).sort(),
    );
    await other.close();
  } finally {
    await room.close();
  }
});

Deno.test("a rejected push in a group closes only its session and changes nothing else", async () => {
  await using kv = await Deno.openKv(":memory:");
  const room = await TldrawRoom.load({ roomId: "r", store: new KvRoomStore(kv), timeouts: FAST });
  try {
    const good = await join(room, "good");
    const bad = await join(room, "bad");
    const observer = await join(room, "o");
    push(room, good, 0, { "shape:g0": ["put", geoShape("shape:g0")] });
    push(room, bad, 0, { "shape:ok": ["put", geoShape("shape:ok")] });
    push(room, bad, 1, {
      "shape:ok2": ["put", geoShape("shape:ok2")],
      "shape:bad": ["put", geoShape("shape:bad", { x: "not a number" })],
    });
    push(room, good, 1, { "shape:g1": ["put", geoShape("shape:g1")] });
    push(room, bad, 2, { "shape:after": ["put", geoShape("shape:after")] });
    push(room, good, 2, { "shape:g2": ["put", geoShape("shape:g2")] });
    await until(() => good.dataEvents().length === 4);
    await room.idle();
    assert.deepEqual(bad.closedWith, { code: 4099, reason: "INVALID_RECORD" });
    assert.deepEqual(
      good.dataEvents().filter((e) => e.type === "push_result").map((e) => [
        e.clientClock,
        e.serverClock,
      ]),
      [[0, 1], [1, 3], [2, 4]],
    );
    assert.deepEqual(
      observer.dataEvents().filter((e) => e.type === "patch").map((e) => e.serverClock),
      [1, 2, 3, 4],
    );
    const ids = room.getRecords().map((r) => r.id).filter((id) => id.startsWith("shape:"));
    assert.deepEqual(ids.sort(), ["shape:g0", "shape:g1", "shape:g2", "shape:ok"]);
    assert.equal(room.clock, 4);
  } finally {
    await room.close();
  }
});

Deno.test("a group too large for one atomic write is cut: big pushes still commit, one clock each", async () => {
  await using kv = await Deno.openKv(":memory:");
  const room = await TldrawRoom.load({ roomId: "r", store: new KvRoomStore(kv), timeouts: FAST });
  try {
    const a = await join(room, "a");
    const b = await join(room, "b");
    for (let n = 0; n < 4; n++) {
      const shape = geoShape(`shape:big${n}`, { meta: { text: "x".repeat(150_000) } });
      push(room, n % 2 ? b : a, n >> 1, { [`shape:big${n}`]: ["put", shape] });
    }
    await until(() =>
      [...a.dataEvents(), ...b.dataEvents()].filter((e) => e.type === "push_result").length === 4
    );
    assert.equal(room.clock, 4);
    const loaded = (await new KvRoomStore(kv).load("r"))!;
    assert.equal(loaded.records.filter((r) => r.state.id.startsWith("shape:big")).length, 4);
  } finally {
    await room.close();
  }
});

Deno.test("a store failure during a group closes the waiting sessions with UNKNOWN_ERROR", async () => {
  await using kv = await Deno.openKv(":memory:");
  let failing = false;
  const inner = new KvRoomStore(kv);
  const unreachable = () => Promise.reject(new Error("KV unreachable"));
  const store = withOverrides(inner, {
    commitSteps: (...args) => failing ? unreachable() : inner.commitSteps(...args),
  });
  const room = await TldrawRoom.load({ roomId: "r", store, timeouts: FAST });
  try {
    const a = await join(room, "a");
    const b = await join(room, "b");
    failing = true;
    push(room, a, 0, { "shape:a": ["put", geoShape("shape:a")] });
    push(room, b, 0, { "shape:b": ["put", geoShape("shape:b")] });
    await until(() => a.closedWith !== null && b.closedWith !== null);
    assert.deepEqual(a.closedWith, { code: 4099, reason: "UNKNOWN_ERROR" });
    assert.deepEqual(b.closedWith, { code: 4099, reason: "UNKNOWN_ERROR" });
    assert.equal(room.clock, 0);
  } finally {
    await room.close();
  }
});

/**
 * Two groups back to back on a store whose commits take 40 ms; the frames the observer receives
 * (the first group's patch must not wait for the second's commit).
 */
async function framesForTwoGroups(remote: boolean): Promise<number[]> {
  await using kv = await Deno.openKv(":memory:");
  const kvStore = new KvRoomStore(kv);
  const store = withOverrides<RoomStore>(kvStore, {
    remote,
    commitSteps: async (...args) => {
      await new Promise((resolve) => setTimeout(resolve, 40));
      return await kvStore.commitSteps(...args);
    },
  });
  const room = await TldrawRoom.load({ roomId: "r", store, timeouts: FAST });
  try {
    const pusher = await join(room, "p");
    const observer = await join(room, "o");
    const framesBefore = observer.sent.filter((f) => f.type === "data").length;
    push(room, pusher, 0, { "shape:a": ["put", geoShape("shape:a")] });
    // While the first group commits: the second group.
    await new Promise((resolve) => setTimeout(resolve, 10));
    push(room, pusher, 1, { "shape:b": ["put", geoShape("shape:b")] });
    await until(() => observer.dataEvents().length === 2);
    await room.idle();
    return observer.sent.filter((f) => f.type === "data").slice(framesBefore)
      .map((f) => f.data.length);
  } finally {
    await room.close();
  }
}

Deno.test("slow commits: each group's patches leave once it is settled, on a local store or a remote one", async () => {
  assert.deepEqual(await framesForTwoGroups(false), [1, 1]);
  assert.deepEqual(await framesForTwoGroups(true), [1, 1]);
});

/**
 * Loads room "r" on `store` with three pushers and an observer, and pushes `total` shape creations
 * from the pushers in turn, awaiting `pause(n)` after push `n`; resolves once the observer has them
 * all. The caller closes the room.
 */
async function pushShapes(
  store: RoomStore,
  total: number,
  pause: (n: number) => Promise<unknown> | undefined,
) {
  const room = await TldrawRoom.load({ roomId: "r", store, timeouts: FAST });
  const pushers = [await join(room, "a"), await join(room, "b"), await join(room, "c")];
  const observer = await join(room, "o");
  const sent = [0, 0, 0];
  for (let n = 0; n < total; n++) {
    const i = n % 3;
    push(room, pushers[i]!, sent[i]!++, { [`shape:${n}`]: ["put", geoShape(`shape:${n}`)] });
    await pause(n);
  }
  await until(() => observer.dataEvents().length === total, 10_000);
  await room.idle();
  return { room, pushers, observer, sent };
}

/** A pause after every third push: about 3 pushes a millisecond. */
const everyThird = (n: number) =>
  n % 3 === 2 ? new Promise((resolve) => setTimeout(resolve, 1)) : undefined;

/**
 * Every push of {@link pushShapes} was acknowledged with `commit`, in each session's order, the
 * observer saw one clock step per push, and every shape is stored; returns the stored room.
 */
async function assertAllCommitted(
  shapes: Awaited<ReturnType<typeof pushShapes>>,
  store: RoomStore,
  total: number,
) {
  shapes.pushers.forEach((socket, i) => {
    assert.equal(socket.closedWith, null);
    const results = socket.dataEvents().filter((e) => e.type === "push_result");
    assert.deepEqual(results.map((e) => e.clientClock), [...Array(shapes.sent[i]).keys()]);
    assert.ok(results.every((e) => e.action === "commit"));
  });
  assert.deepEqual(
    shapes.observer.dataEvents().map((e) => e.serverClock),
    Array.from({ length: total }, (_, n) => n + 1),
  );
  const data = (await store.load("r"))!;
  for (let n = 0; n < total; n++) {
    assert.ok(data.records.some((r) => r.state.id === `shape:${n}`), `shape:${n} lost`);
  }
}

/** `kv` counting, per record id, the record writes of operations that landed. */
function countingRecordWrites(kv: Deno.Kv): { kv: Deno.Kv; written: Map<string, number> } {
  const written = new Map<string, number>();
  const atomic = () => {
    const op = kv.atomic();
    const ids: string[] = [];
    const set = op.set.bind(op);
    op.set = (key, value, options) => {
      if (key.at(-2) === "rec") ids.push(String(key.at(-1)));
      return set(key, value, options);
    };
    const commit = op.commit.bind(op);
    op.commit = async () => {
      const result = await commit();
      if (result.ok) { for (const id of ids) written.set(id, (written.get(id) ?? 0) + 1); }
      return result;
    };
    return op;
  };
  return { kv: withKvMethods(kv, new Map([["atomic", atomic]])), written };
}

Deno.test("pipelined commits on a remote KV: a busy room keeps commits in flight, each writing only its own steps, in order even when they land out of order", async () => {
  await using local = await Deno.openKv(":memory:");
  // Every operation 10–20 ms away, landing in any order.
  const remote = jitteryKv(local, () => 10 + Math.random() * 10);
  const counted = countingRecordWrites(remote.kv);
  const kvStore = new KvRoomStore(counted.kv, { remote: true, commitsInFlight: 8 });
  let inFlight = 0;
  let mostInFlight = 0;
  let pipelined = 0;
  const store = withOverrides<RoomStore>(kvStore, {
    pipelineSteps: (roomId, expectedClock, steps) => {
      const result = kvStore.pipelineSteps(roomId, expectedClock, steps);
      if (!result) return undefined;
      pipelined++;
      mostInFlight = Math.max(mostInFlight, ++inFlight);
      return result.finally(() => inFlight--);
    },
  });
  const total = 300;
  // About 3 pushes a millisecond: dozens within one round trip.
  const shapes = await pushShapes(store, total, everyThird);
  try {
    // In order, one clock step per push, every shape stored.
    await assertAllCommitted(shapes, kvStore, total);
    assert.ok(pipelined > 5, `pipelined commits: ${pipelined}`);
    assert.ok(mostInFlight > 1, "no commit was issued while another was in flight");
    assert.ok(remote.stats.reordered > 0, "the KV applied some operations out of order");
    for (let n = 0; n < total; n++) {
      // (Commits carrying the steps of those in flight wrote each shape several times.)
      assert.equal(counted.written.get(`shape:${n}`), 1, `shape:${n} written more than once`);
    }
  } finally {
    await shapes.room.close();
  }
});

Deno.test("pipelined commits on a remote KV: a busy room spaces its commits over a round trip instead of issuing them in a burst", async () => {
  await using local = await Deno.openKv(":memory:");
  const remote = jitteryKv(local, () => 20);
  const kvStore = new KvRoomStore(remote.kv, { remote: true, commitsInFlight: 16 });
  // Each pipelined commit: when it was issued, and how many steps it had.
  const issued: { at: number; steps: number }[] = [];
  const store = withOverrides<RoomStore>(kvStore, {
    pipelineSteps: (roomId, expectedClock, steps) => {
      const result = kvStore.pipelineSteps(roomId, expectedClock, steps);
      if (result) issued.push({ at: performance.now(), steps: steps.length });
      return result;
    },
  });
  // They keep arriving, one by one (a microtask apart, with a macrotask now and then so that
  // commits return): without spacing, each would go out at once, eight in a burst.
  const { room } = await pushShapes(
    store,
    600,
    (n) => n % 20 === 19 ? new Promise((resolve) => setTimeout(resolve, 0)) : Promise.resolve(),
  );
  try {
    // Once a commit has returned (its time is then known), three commits of big groups in a row
    // are never issued within 1 ms: a group issued while another is in flight waits its share of
    // a round trip (20 ms over 8 commits) before the next goes out; only one issued into an empty
    // pipeline goes at once. (Issued in bursts, eight went out within a millisecond.)
    const firstReturn = issued[0]!.at + 20;
    let triples = 0;
    let bursts = 0;
    for (let i = 2; i < issued.length; i++) {
      const [a, b, c] = [issued[i - 2]!, issued[i - 1]!, issued[i]!];
      if (a.at <= firstReturn || a.steps < PACED_GROUP || b.steps < PACED_GROUP) continue;
      triples++;
      if (c.at - a.at < 1) bursts++;
    }
    assert.ok(triples >= 5, `commits after big groups: ${triples}`);
    assert.equal(bursts, 0, `issued: ${issued.map(({ at }) => at.toFixed(1))}`);
  } finally {
    await room.close();
  }
});

Deno.test("pipelined commits on a remote KV: more pushes than one group queued behind a commit go out as several pipelined groups", async () => {
  await using local = await Deno.openKv(":memory:");
  const remote = jitteryKv(local, () => 15);
  const kvStore = new KvRoomStore(remote.kv, { remote: true, commitsInFlight: 8 });
  let normal = 0;
  const pipelined: number[] = [];
  const store = withOverrides<RoomStore>(kvStore, {
    commitSteps: (...args) => {
      normal++;
      return kvStore.commitSteps(...args);
    },
    pipelineSteps: (roomId, expectedClock, steps) => {
      const result = kvStore.pipelineSteps(roomId, expectedClock, steps);
      if (result) pipelined.push(steps.length);
      return result;
    },
  });
  const room = await TldrawRoom.load({ roomId: "r", store, timeouts: FAST });
  try {
    const pusher = await join(room, "a");
    const observer = await join(room, "o");
    // A normal commit first: the room's pipeline starts after it.
    push(room, pusher, 0, { "shape:first": ["put", geoShape("shape:first")] });
    await until(() => observer.dataEvents().length === 1);
    const normalBefore = normal;
    // Two and a half groups' worth, queued at once.
    const burst = MAX_GROUP_PUSHES * 2 + MAX_GROUP_PUSHES / 2;
    for (let n = 1; n <= burst; n++) {
      push(room, pusher, n, { [`shape:${n}`]: ["put", geoShape(`shape:${n}`)] });
    }
    await until(() => observer.dataEvents().length === burst + 1, 10_000);
    await room.idle();
    assert.equal(normal - normalBefore, 0, "some of the burst was committed in order");
    assert.deepEqual(pipelined, [MAX_GROUP_PUSHES, MAX_GROUP_PUSHES, MAX_GROUP_PUSHES / 2]);
    const results = pusher.dataEvents().filter((e) => e.type === "push_result");
    assert.deepEqual(results.map((e) => e.clientClock), [...Array(burst + 1).keys()]);
    assert.deepEqual(
      observer.dataEvents().map((e) => e.serverClock),
      Array.from({ length: burst + 1 }, (_, n) => n + 1),
    );
    const data = (await kvStore.load("r"))!;
    assert.equal(data.meta.documentClock, burst + 1);
    for (let n = 1; n <= burst; n++) {
      assert.ok(data.records.some((r) => r.state.id === `shape:${n}`), `shape:${n} lost`);
    }
  } finally {
    await room.close();
  }
});

/** `kv` whose atomic commits numbered in `failing` (1-based) throw SQLite's busy error unapplied. */
function lockedAt(kv: Deno.Kv, failing: Set<number>): { kv: Deno.Kv; failed: () => number } {
  let commits = 0;
  let failed = 0;
  const atomic = () => {
    const op = kv.atomic();
    const commit = op.commit.bind(op);
    op.commit = () => {
      if (!failing.has(++commits)) return commit();
      failed++;
      return Promise.reject(new TypeError("database is locked"));
    };
    return op;
  };
  return { kv: withKvMethods(kv, new Map([["atomic", atomic]])), failed: () => failed };
}

Deno.test("pipelined commits on a remote KV: a commit refused by a busy file is planned and committed again, not failed", async () => {
  await using local = await Deno.openKv(":memory:");
  const remote = jitteryKv(local, () => 5 + Math.random() * 5);
  const locked = lockedAt(remote.kv, new Set([4, 9, 10, 17, 30]));
  const kvStore = new KvRoomStore(locked.kv, { remote: true, commitsInFlight: 8 });
  let refusedInPipeline = 0;
  const pipelining = withOverrides<RoomStore>(kvStore, {
    pipelineSteps: (roomId, expectedClock, steps) => {
      const result = kvStore.pipelineSteps(roomId, expectedClock, steps);
      result?.catch((error) => {
        if (isDatabaseLocked(error)) refusedInPipeline++;
      });
      return result;
    },
  });
  // As the server runs it: a busy file is retried.
  const store = withLockedRetry(pipelining, { sleep: () => Promise.resolve() });
  const total = 120;
  const shapes = await pushShapes(store, total, everyThird);
  try {
    assert.ok(refusedInPipeline > 0, `pipelined commits refused: ${refusedInPipeline}`);
    await assertAllCommitted(shapes, kvStore, total);
  } finally {
    await shapes.room.close();
  }
});

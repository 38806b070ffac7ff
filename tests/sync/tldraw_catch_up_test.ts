/**
 * Cross-isolate catch-up in one process (room managers on one KV, a memory bus): per-clock patches
 * rebuilt after the log was compacted, re-hydration when no correct patch exists, presence learned
 * from session entries, and retries of a busy KV file.
 */
import assert from "node:assert/strict";
import { silentLogger } from "../../log.ts";
import { MemoryBusHub } from "../../sync/bus/memory_bus.ts";
import { RebuildError, settledView, stepsFromReload } from "../../sync/tldraw/catch_up.ts";
import { KvRoomStore } from "../../sync/tldraw/kv_room_store.ts";
import {
  isDatabaseLocked,
  retryWhileLocked,
  withLockedRetry,
} from "../../sync/tldraw/locked_retry.ts";
import { MemoryRoomStore } from "../../sync/tldraw/memory_room_store.ts";
import type { RoomTimeouts } from "../../sync/tldraw/room.ts";
import { busTopic, type RoomConnection, RoomManager } from "../../sync/tldraw/room_manager.ts";
import type { RoomData } from "../../sync/tldraw/room_store.ts";
import { FakeSocket, sleep, until } from "../helpers/fake_socket.ts";
import { connectRequest, geoShape } from "../helpers/raw_socket.ts";
import { presenceRecord } from "../helpers/raw_socket.ts";

interface Joined {
  socket: FakeSocket;
  connection: RoomConnection;
}

async function join(manager: RoomManager, sessionId: string): Promise<Joined> {
  const socket = new FakeSocket();
  const connection = manager.connect("room", socket, { sessionId, isReadonly: false });
  connection.message(JSON.stringify(connectRequest()));
  await until(() => socket.sent.some((f) => f.type === "connect"));
  return { socket, connection };
}

async function withTwo(
  options: { logSize?: number; timeouts?: Partial<RoomTimeouts> },
  fn: (one: RoomManager, two: RoomManager, hub: MemoryBusHub, store: KvRoomStore) => Promise<void>,
): Promise<void> {
  const kv = await Deno.openKv(":memory:");
  const hub = new MemoryBusHub();
  const buses = [hub.connect(), hub.connect()];
  const store = new KvRoomStore(kv, { logSize: options.logSize ?? 1000 });
  const [one, two] = buses.map((bus) =>
    new RoomManager({
      store: new KvRoomStore(kv, { logSize: options.logSize ?? 1000 }),
      log: silentLogger,
      bus,
      timeouts: { poll: 0, idle: 10_000, ...options.timeouts },
    })
  );
  try {
    await fn(one!, two!, hub, store);
  } finally {
    await one!.close();
    await two!.close();
    await sleep(10);
    for (const bus of buses) await bus.close();
    kv.close();
  }
}

function push(connection: RoomConnection, clientClock: number, id: string): void {
  connection.message(JSON.stringify({
    type: "push",
    clientClock,
    diff: { [id]: ["put", geoShape(id)] },
  }));
}

Deno.test("catch-up behind a compacted log still forwards every clock, one patch each", async () => {
  await withTwo({ logSize: 3 }, async (one, two, hub) => {
    const writer = await join(one, "writer");
    const observer = await join(two, "observer");
    hub.setDropRule(() => true); // isolate two hears nothing and does not poll
    for (let n = 0; n < 6; n++) push(writer.connection, n, `shape:c${n}`);
    await until(() => writer.socket.dataEvents().length === 6);
    assert.equal(observer.socket.dataEvents().length, 0);
    await (await two.get("room")).catchUp();
    await until(() => observer.socket.dataEvents().length === 6); // later ones are batched
    const clocks = observer.socket.dataEvents().map((e) => e.serverClock);
    assert.deepEqual(clocks, [1, 2, 3, 4, 5, 6]);
    const events = observer.socket.dataEvents();
    for (let n = 0; n < 6; n++) assert.ok(events[n].diff[`shape:c${n}`], `clock ${n + 1}`);
  });
});

Deno.test("catch-up past a pruned history closes sessions without a code (they re-hydrate)", async () => {
  await withTwo({ logSize: 3 }, async (one, two, hub, store) => {
    const writer = await join(one, "writer");
    const observer = await join(two, "observer");
    hub.setDropRule(() => true);
    for (let n = 0; n < 5; n++) push(writer.connection, n, `shape:p${n}`);
    await until(() => writer.socket.dataEvents().length === 5);
    assert.equal(await store.pruneTombstones("room", 5, 5), true);
    await (await two.get("room")).catchUp();
    assert.deepEqual(observer.socket.closedWith, { code: undefined, reason: undefined });
    assert.equal(observer.socket.dataEvents().length, 0);
    // Reconnecting, the client is told everything (it was behind the cutoff).
    const again = await join(two, "observer");
    const reply = again.socket.sent.find((f) => f.type === "connect");
    assert.equal(reply.serverClock, 5);
    assert.ok(reply.diff["shape:p4"]);
  });
});

Deno.test("presence whose bus notice was lost is learned from the session entries", async () => {
  await withTwo(
    { timeouts: { presenceWrite: 20, presenceSweep: 50, poll: 20 } },
    async (one, two, hub) => {
      hub.setDropRule((envelope) => envelope.topic.startsWith("tldraw-presence:"));
      const early = await join(two, "early");
      const a = await join(one, "a");
      a.connection.message(JSON.stringify({
        type: "push",
        clientClock: 0,
        presence: ["put", presenceRecord(3)],
      }));
      // An existing session on isolate two gets it from the periodic sweep …
      const hasPresence = (socket: FakeSocket) =>
        socket.dataEvents().some((e) =>
          Object.keys(e.diff ?? {}).some((id) => id.startsWith("instance_presence:"))
        );
      await until(() => hasPresence(early.socket), 2_000);
      // … and a late joiner in its connect reply.
      const late = await join(two, "late");
      const reply = late.socket.sent.find((f) => f.type === "connect");
      const ids = Object.keys(reply.diff).filter((id) => id.startsWith("instance_presence:"));
      assert.equal(ids.length, 1);
      assert.equal(reply.diff[ids[0]!][1].cursor.x, 3);
    },
  );
});

Deno.test("stepsFromReload splits a reload by clock and refuses what it cannot rebuild", () => {
  const data: RoomData = {
    meta: { documentClock: 4, tombstoneHistoryStartsAtClock: 1, schema: null },
    records: [
      { state: { id: "shape:a", typeName: "shape" }, lastChangedClock: 2 },
      { state: { id: "shape:b", typeName: "shape" }, lastChangedClock: 4 },
      // Written by a commit that was landing while the room was listed.
      { state: { id: "shape:c", typeName: "shape" }, lastChangedClock: 5 },
    ],
    tombstones: new Map([["shape:d", 3], ["shape:e", 1]]),
  };
  const rebuilt = stepsFromReload(settledView(data), 1);
  assert.deepEqual(rebuilt, {
    ok: true,
    steps: [
      { clock: 2, puts: [data.records[0]], deletes: [] },
      { clock: 3, puts: [], deletes: ["shape:d"] },
      { clock: 4, puts: [data.records[1]], deletes: [] },
    ],
  });
  assert.deepEqual(stepsFromReload(data, 0), { ok: false, error: RebuildError.history_pruned });
  assert.deepEqual(stepsFromReload(data, 1, 2), {
    ok: false,
    error: RebuildError.too_far_behind,
  });
});

Deno.test("a busy KV file is retried with jittered backoff; other errors are not", async () => {
  const pauses: number[] = [];
  let calls = 0;
  const value = await retryWhileLocked(() => {
    calls++;
    if (calls < 4) return Promise.reject(new TypeError("database is locked"));
    return Promise.resolve("done");
  }, { sleep: (ms) => (pauses.push(ms), Promise.resolve()), random: () => 0.5 });
  assert.equal(value, "done");
  assert.deepEqual(pauses, [5, 10, 20]);
  await assert.rejects(
    retryWhileLocked(() => Promise.reject(new Error("boom")), { sleep: () => Promise.resolve() }),
    /boom/,
  );
  await assert.rejects(
    retryWhileLocked(() => Promise.reject(new Error("database is locked")), {
      attempts: 2,
      sleep: () => Promise.resolve(),
    }),
    /locked/,
  );
  assert.ok(isDatabaseLocked(new Error("SQLITE_BUSY: database is locked")));
  assert.ok(!isDatabaseLocked(new Error("conflict")));
  // The store wrapper passes results through.
  const store = withLockedRetry(new MemoryRoomStore());
  assert.equal(await store.readClock("nothing"), -1);
});

Deno.test("closing a room for eviction sends batched events (push results) before the 1012", async () => {
  const manager = new RoomManager({
    store: new MemoryRoomStore(),
    log: silentLogger,
    timeouts: { batch: 1_000, poll: 0 },
  });
  const a = await join(manager, "a");
  for (let n = 0; n < 3; n++) push(a.connection, n, `shape:e${n}`);
  // Results of a committed group go out at its end; anything still in the (long) batch window
  // must go out before the close.
  await until(() => a.socket.dataEvents().length >= 1);
  await (await manager.get("room")).idle();
  await manager.close(1012, "server restarting");
  assert.deepEqual(a.socket.dataEvents().map((e) => e.clientClock), [0, 1, 2]);
  assert.deepEqual(a.socket.closedWith, { code: 1012, reason: "server restarting" });
});

Deno.test("contention reported on the bus makes other isolates hold their commits back briefly", async () => {
  await withTwo({}, async (one, _two, hub) => {
    const a = await join(one, "a");
    push(a.connection, 0, "shape:free");
    await until(() => a.socket.dataEvents().length === 1);
    // Another isolate lost two races in a row on this room and asks for a turn.
    const other = hub.connect();
    await other.publish(busTopic("room"), { clock: 1, contended: true });
    await sleep(3); // delivery (a macrotask)
    const started = performance.now();
    push(a.connection, 1, "shape:held");
    await until(() => a.socket.dataEvents().some((e) => e.clientClock === 1), 2_000);
    assert.ok(performance.now() - started >= 15, "the commit was not held back");
    await other.close();
  });
});

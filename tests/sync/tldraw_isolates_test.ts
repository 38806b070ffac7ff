/**
 * Several isolates (room managers) on one KV: bus notices make patches flow between them, a lost
 * notice is repaired by the periodic clock check, and every session sees clocks without gaps.
 */
import assert from "node:assert/strict";
import { FakeSocket, until } from "../helpers/fake_socket.ts";
import { connectRequest, geoShape } from "../helpers/raw_socket.ts";
import { silentLogger } from "../../log.ts";
import { MemoryBusHub } from "../../sync/bus/memory_bus.ts";
import { KvRoomStore } from "../../sync/tldraw/kv_room_store.ts";
import { type RoomConnection, RoomManager } from "../../sync/tldraw/room_manager.ts";
import { presenceRecord } from "../helpers/raw_socket.ts";
import { withOverrides } from "../helpers/overrides.ts";
import type { RoomStore } from "../../sync/tldraw/room_store.ts";

interface Isolate {
  manager: RoomManager;
  join(sessionId: string): Promise<{ socket: FakeSocket; connection: RoomConnection }>;
}

async function withIsolates(
  count: number,
  fn: (isolates: Isolate[], hub: MemoryBusHub) => Promise<void>,
  poll = 5_000,
  timeouts: Record<string, number> = {},
  wrapStore: (store: RoomStore, index: number) => RoomStore = (store) => store,
) {
  const kv = await Deno.openKv(":memory:");
  const hub = new MemoryBusHub();
  const buses = Array.from({ length: count }, () => hub.connect());
  const isolates = buses.map((bus, index): Isolate => {
    const manager = new RoomManager({
      store: wrapStore(new KvRoomStore(kv), index),
      log: silentLogger,
      bus,
      timeouts: { poll, idle: 10_000, ...timeouts },
    });
    return {
      manager,
      join: async (sessionId) => {
        const socket = new FakeSocket();
        const connection = manager.connect("room", socket, { sessionId, isReadonly: false });
        connection.message(JSON.stringify(connectRequest()));
        await until(() => socket.sent.some((f) => f.type === "connect"));
        return { socket, connection };
      },
    };
  });
  try {
    await fn(isolates, hub);
  } finally {
    for (const isolate of isolates) await isolate.manager.close();
    // Let bus deliveries already scheduled (a macrotask each) finish before closing.
    await new Promise((resolve) => setTimeout(resolve, 10));
    for (const bus of buses) await bus.close();
    kv.close();
  }
}

/** A store wrapper counting the log reads (`stepsSince`) of every isolate but the first. */
function countingLogReads(reads: { count: number }) {
  return (store: RoomStore, index: number) =>
    index === 0 ? store : withOverrides<RoomStore>(store, {
      stepsSince: (...args) => {
        reads.count++;
        return store.stepsSince(...args);
      },
    });
}

function pushShape(connection: RoomConnection, clientClock: number, id: string) {
  connection.message(JSON.stringify({
    type: "push",
    clientClock,
    diff: { [id]: ["put", geoShape(id)] },
  }));
}

Deno.test("a commit on one isolate reaches sessions on another through the bus", async () => {
  await withIsolates(2, async ([one, two]) => {
    const a = await one!.join("a");
    const b = await two!.join("b");
    pushShape(a.connection, 0, "shape:x");
    await until(() => b.socket.dataEvents().some((e) => e.diff?.["shape:x"]), 1_000);
    assert.equal(b.socket.dataEvents()[0].serverClock, 1);
  });
});

Deno.test("a lost bus notice is repaired by the periodic clock check", async () => {
  await withIsolates(2, async ([one, two], hub) => {
    hub.setDropRule(() => true);
    const a = await one!.join("a");
    const b = await two!.join("b");
    const started = Date.now();
    pushShape(a.connection, 0, "shape:lost");
    await until(() => b.socket.dataEvents().some((e) => e.diff?.["shape:lost"]), 2_000);
    assert.ok(hub.dropped > 0);
    assert.ok(Date.now() - started < 2_000);
  }, 200);
});

Deno.test("an isolate that applies the writer's notices skips its clock polls; a lost last notice is still read by one", async () => {
  const reads = { count: 0 };
  await withIsolates(
    2,
    async ([one, two], hub) => {
      const a = await one!.join("a");
      const b = await two!.join("b");
      pushShape(a.connection, 0, "shape:first");
      await until(() => b.socket.dataEvents().length === 1, 1_000);
      // A second of edits, one every 50 ms, polled for every 100 ms: the notices tell the clock.
      const readsBefore = reads.count;
      for (let n = 1; n <= 20; n++) {
        pushShape(a.connection, n, `shape:${n}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      await until(() => b.socket.dataEvents().length === 21, 1_000);
      assert.ok(
        reads.count - readsBefore <= 1,
        `${reads.count - readsBefore} polls while notices came`,
      );
      // The last notice is lost: a poll reads the commit within two intervals.
      hub.setDropRule(() => true);
      const lostAt = Date.now();
      pushShape(a.connection, 21, "shape:lost");
      await until(() => b.socket.dataEvents().some((e) => e.diff?.["shape:lost"]), 1_000);
      assert.ok(hub.dropped > 0);
      assert.ok(Date.now() - lostAt < 500, `repaired after ${Date.now() - lostAt} ms`);
    },
    100,
    {},
    countingLogReads(reads),
  );
});

Deno.test("concurrent pushes on three isolates: clocks only increase and every copy converges", async () => {
  await withIsolates(3, async (isolates) => {
    const sessions = await Promise.all(isolates.map((isolate, i) => isolate.join(`s${i}`)));
    const perSession = 5;
    for (let n = 0; n < perSession; n++) {
      sessions.forEach((s, i) => pushShape(s.connection, n, `shape:${i}-${n}`));
    }
    const total = perSession * sessions.length;
    await until(() =>
      sessions.every((s) =>
        s.socket.dataEvents().at(-1)?.serverClock === total &&
        s.socket.dataEvents().filter((e) => e.type === "push_result").length === perSession
      ), 5_000);
    for (const { socket } of sessions) {
      // Every clock once, in order: a catch-up forwards one patch per commit of another isolate.
      const clocks = socket.dataEvents().map((e) => e.serverClock);
      assert.deepEqual(clocks, Array.from({ length: total }, (_, i) => i + 1));
      for (const e of socket.dataEvents().filter((e) => e.type === "push_result")) {
        assert.equal(e.action, "commit");
      }
    }
    // Every isolate's copy holds all 15 shapes at clock 15.
    const rooms = await Promise.all(isolates.map((i) => i.manager.get("room")));
    for (const room of rooms) {
      assert.equal(room.clock, total);
      assert.equal(room.getRecords().filter((r) => r.typeName === "shape").length, total);
    }
  });
});

Deno.test("alone in a room an isolate stays off the bus; a second isolate joining gets the latest presence", async () => {
  await withIsolates(2, async ([one, two], hub) => {
    const published: string[] = [];
    const topics = () => [...published];
    hub.setDropRule((envelope) => {
      published.push(envelope.topic.split(":")[0]!);
      return false;
    });
    const a = await one!.join("a");
    a.connection.message(JSON.stringify({
      type: "push",
      clientClock: 0,
      presence: ["put", presenceRecord(5)],
    }));
    pushShape(a.connection, 1, "shape:x");
    const results = () => a.socket.dataEvents().filter((e) => e.type === "push_result").length;
    await until(() => results() === 2);
    a.connection.message(JSON.stringify({
      type: "push",
      clientClock: 2,
      presence: ["patch", { cursor: ["put", { x: 7, y: 0, type: "default", rotation: 0 }] }],
    }));
    await until(() => results() === 3);
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(topics(), [], "nothing published while alone");

    // B joins on isolate two: it says hello, and A's latest presence (x: 7) follows on the bus.
    const b = await two!.join("b");
    const cursorX = () =>
      b.socket.dataEvents().flatMap((e) =>
        Object.entries(e.diff ?? {}).filter(([id]) => id.startsWith("instance_presence:"))
      ).map(([, op]) => {
        const [kind, value] = op as [string, { cursor?: { x: number } }];
        return kind === "put" ? value.cursor?.x : undefined;
      }).at(-1);
    const reply = b.socket.sent.find((f) => f.type === "connect");
    const diff = reply.diff as Record<string, [string, { cursor: { x: number } }]>;
    const fromEntry = Object.entries(diff).find(([id]) => id.startsWith("instance_presence"));
    // The session entry may already hold x: 7; if not, the re-sent presence must bring it.
    if (fromEntry?.[1][1].cursor.x !== 7) await until(() => cursorX() === 7, 1_000);
    assert.ok(published.includes("tldraw"), "hello");
    // From now on commits on one are announced to two.
    pushShape(a.connection, 3, "shape:y");
    await until(() => b.socket.dataEvents().some((e) => e.diff?.["shape:y"]), 1_000);
  });
});

Deno.test("presence crosses isolates: it appears, moves and is removed on the other isolate", async () => {
  await withIsolates(
    2,
    async ([one, two]) => {
      const a = await one!.join("a");
      const b = await two!.join("b");
      a.connection.message(JSON.stringify({
        type: "push",
        clientClock: 0,
        presence: ["put", presenceRecord(5)],
      }));
      const seen = () =>
        b.socket.dataEvents().filter((e) =>
          Object.keys(e.diff ?? {}).some((id) => id.startsWith("instance_presence:"))
        );
      await until(() => seen().length === 1, 1_000);
      const presenceId = Object.keys(seen()[0].diff)[0]!;
      // A late joiner on isolate two gets A's presence in its connect reply.
      const c = await two!.join("c");
      assert.equal(c.socket.sent[0].diff[presenceId][1].cursor.x, 5);
      a.connection.message(JSON.stringify({
        type: "push",
        clientClock: 1,
        presence: ["patch", { cursor: ["put", { x: 9, y: 0, type: "default", rotation: 0 }] }],
      }));
      await until(() => seen().length === 2, 1_000);
      assert.deepEqual(seen()[1].diff[presenceId][0], "patch");
      // A leaves; after the removal wait its presence is removed on isolate two as well.
      a.socket.close();
      a.connection.close();
      await until(() => seen().some((e) => e.diff[presenceId]?.[0] === "remove"), 2_000);
    },
    5_000,
    { removal: 100 },
  );
});

Deno.test("a commit too big for one bus notice reaches the other isolate in several, without a log read", async () => {
  const reads = { count: 0 };
  const countReads = countingLogReads(reads);
  await withIsolates(
    2,
    async ([one, two]) => {
      const a = await one!.join("a");
      const b = await two!.join("b");
      pushShape(a.connection, 0, "shape:first");
      await until(() => b.socket.dataEvents().length === 1, 1_000);
      const readsBefore = reads.count;
      // Queued behind nothing: one group, one commit of 20 steps (about 10 KB of records).
      for (let n = 1; n <= 20; n++) pushShape(a.connection, n, `shape:${n}`);
      await until(() => b.socket.dataEvents().length === 21, 2_000);
      assert.deepEqual(
        b.socket.dataEvents().map((e) => e.serverClock),
        Array.from({ length: 21 }, (_, i) => i + 1),
      );
      assert.equal(reads.count - readsBefore, 0, "the other isolate read the log");
    },
    60_000,
    {},
    countReads,
  );
});

Deno.test("moves of a shape reach the other isolate as patches on the bus: its sessions get the same diffs, its copy the same record", async () => {
  const reads = { count: 0 };
  const countReads = countingLogReads(reads);
  await withIsolates(
    2,
    async ([one, two], hub) => {
      const a = await one!.join("a");
      const same = await one!.join("same");
      const b = await two!.join("b");
      // What the commit notices carry (another endpoint on the same bus).
      const notices: string[] = [];
      hub.connect().subscribe("tldraw:room", (body) => notices.push(JSON.stringify(body)));
      pushShape(a.connection, 0, "shape:s");
      await until(() => b.socket.dataEvents().length === 1, 1_000);
      const readsBefore = reads.count;
      for (let n = 1; n <= 10; n++) {
        a.connection.message(JSON.stringify({
          type: "push",
          clientClock: n,
          diff: { "shape:s": ["patch", { x: ["put", n * 10], y: ["put", n] }] },
        }));
      }
      await until(() => b.socket.dataEvents().length === 11, 2_000);
      await until(() => same.socket.dataEvents().length === 11, 2_000);
      assert.deepEqual(b.socket.dataEvents(), same.socket.dataEvents());
      assert.deepEqual(b.socket.dataEvents()[10].diff, {
        "shape:s": ["patch", { x: ["put", 100], y: ["put", 10] }],
      });
      assert.equal(reads.count - readsBefore, 0, "the other isolate read the log");
      // The moves went as patches: no notice after the creation carries the whole record.
      const moves = notices.filter((n) => n.includes('"steps"')).slice(1);
      assert.ok(moves.length > 0 && moves.every((n) => !n.includes('"typeName"')), `${moves}`);
      // The other isolate's copy is the record as committed: a session joining there gets it.
      const late = await two!.join("late");
      const connect = late.socket.sent.find((f) => f.type === "connect")!;
      const record = connect.diff["shape:s"][1];
      assert.deepEqual([record.x, record.y], [100, 10]);
      const stored = await one!.manager.store.load("room");
      assert.deepEqual(record, stored!.records.find((r) => r.state.id === "shape:s")!.state);
    },
    60_000,
    {},
    countReads,
  );
});

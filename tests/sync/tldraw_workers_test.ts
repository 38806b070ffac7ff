/**
 * One room over several real isolates (Web Workers started by `startIsolates`, sharing the KV file
 * and the bus), with the real tldraw client and raw protocol sockets: convergence, clocks in order
 * with no gaps, concurrent writers, a crashed isolate, room-wide limits and presence, eviction.
 */
import assert from "node:assert/strict";
import { pushUntilStopped } from "../helpers/acked_pushes.ts";
import { createShapeId, type TLRecord } from "@tldraw/tlschema";
import { until } from "../helpers/fake_socket.ts";
import { type Cluster, startCluster } from "../helpers/isolate_cluster.ts";
import {
  connectRaw,
  connectRequest,
  type Frame,
  geoShape,
  openRaw,
  type RawSocket,
} from "../helpers/raw_socket.ts";
import {
  connectClient,
  documentRecords,
  presenceRecords,
  type TestClient,
  type TestStore,
} from "../helpers/tldraw_client.ts";
import { presenceRecord } from "../helpers/raw_socket.ts";

/**
 * Asserts that a session's data events walk the clocks one by one from `from`: each event carries
 * the previous clock (presence only, or a discarded push) or exactly the next one.
 */
function assertConsecutive(events: Frame[], from: number, label: string): number {
  let clock = from;
  for (const event of events) {
    if (event.serverClock === clock) {
      if (event.type === "patch") {
        const ids = Object.keys(event.diff);
        assert.ok(
          ids.every((id) => id.startsWith("instance_presence:")),
          `${label}: a document patch repeats clock ${clock}: ${ids}`,
        );
      }
      continue;
    }
    assert.equal(
      event.serverClock,
      clock + 1,
      `${label}: after ${clock} came ${event.serverClock}`,
    );
    clock = event.serverClock;
  }
  return clock;
}

function sameDocument(stores: TestStore[]): boolean {
  const first = JSON.stringify(documentRecords(stores[0]!));
  return stores.every((s) => JSON.stringify(documentRecords(s)) === first);
}

function shapeCount(store: TestStore): number {
  return store.allRecords().filter((r) => r.typeName === "shape").length;
}

async function closeAll(things: { close(): Promise<void> }[]): Promise<void> {
  await Promise.all(things.map((t) => t.close()));
}

/** The document as a fresh session on `url` is told it is (every record, from clock -1). */
async function documentAt(url: string): Promise<{ clock: number; ids: Set<string> }> {
  const { socket, reply } = await connectRaw(url);
  await socket.close();
  return { clock: reply.serverClock, ids: new Set(Object.keys(reply.diff)) };
}

async function spreadClientsConverge(isolates: number): Promise<void> {
  await using cluster = await startCluster(isolates);
  const room = `spread-${isolates}`;
  const observers: RawSocket[] = [];
  const clients: TestClient[] = [];
  try {
    // One raw observer on every isolate, connected before anything happens.
    const starts: number[] = [];
    for (let i = 0; i < isolates; i++) {
      const { socket, reply } = await connectRaw(cluster.roomUrl(i, room));
      observers.push(socket);
      starts.push(reply.serverClock);
    }
    // Two real clients per isolate.
    for (let i = 0; i < isolates * 2; i++) {
      clients.push(connectClient(cluster.roomUrl(i % isolates, room)));
    }
    await Promise.all(clients.map((c) => c.loaded));
    const perClient = 8;
    for (let n = 0; n < perClient; n++) {
      clients.forEach((client, i) => {
        const id = createShapeId(`c${i}-${n}`);
        client.store.put([{ ...geoShape(id), x: n } as unknown as TLRecord]);
      });
      // Edits of a shared shape from every side too.
      if (n > 0) {
        const shared = createShapeId("c0-0");
        clients.forEach((client, i) => {
          if (client.store.has(shared)) {
            client.store.update(shared, (r) => ({ ...r, y: i * 100 + n }));
          }
        });
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const total = perClient * clients.length;
    await until(
      () =>
        clients.every((c) => shapeCount(c.store) === total) &&
        sameDocument(clients.map((c) => c.store)),
      10_000,
    );
    // Every observer ends at the room's clock, having seen each clock once, in order.
    const { clock } = await documentAt(cluster.roomUrl(0, room));
    await until(() => observers.every((o) => o.dataEvents().at(-1)?.serverClock === clock), 5_000);
    observers.forEach((o, i) => {
      const last = assertConsecutive(o.dataEvents(), starts[i]!, `observer on isolate ${i}`);
      assert.equal(last, clock);
    });
    for (const client of clients) assert.deepEqual(client.errors, []);
  } finally {
    await closeAll(clients);
    await closeAll(observers);
  }
}

Deno.test("2 isolates: real clients spread over both converge; raw observers see every clock in order", async () => {
  await spreadClientsConverge(2);
});

Deno.test("3 isolates: real clients spread over all converge; raw observers see every clock in order", async () => {
  await spreadClientsConverge(3);
});

Deno.test("concurrent writers on 3 isolates at high rate: no lost update, no duplicate clock", async () => {
  await using cluster = await startCluster(3);
  const room = "contended";
  const writers: RawSocket[] = [];
  try {
    const starts: number[] = [];
    for (let i = 0; i < 3; i++) {
      const { socket, reply } = await connectRaw(cluster.roomUrl(i, room));
      writers.push(socket);
      starts.push(reply.serverClock);
    }
    const perWriter = 60;
    // All pushes at once, interleaved: every commit races the other two isolates.
    for (let n = 0; n < perWriter; n++) {
      writers.forEach((w, i) => {
        w.send({
          type: "push",
          clientClock: n,
          diff: {
            [`shape:w${i}-${n}`]: ["put", geoShape(`shape:w${i}-${n}`)],
          },
        });
      });
    }
    const results = () =>
      writers.map((w) => w.dataEvents().filter((e: Frame) => e.type === "push_result"));
    await until(() => results().every((r) => r.length === perWriter), 30_000);
    const clocks = results().flat().map((r) => r.serverClock);
    assert.equal(new Set(clocks).size, clocks.length, "two pushes committed at one clock");
    for (const r of results().flat()) assert.equal(r.action, "commit");
    const final = await documentAt(cluster.roomUrl(1, room));
    assert.equal(final.clock, starts[0]! + 3 * perWriter);
    for (let i = 0; i < 3; i++) {
      for (let n = 0; n < perWriter; n++) assert.ok(final.ids.has(`shape:w${i}-${n}`));
    }
    await until(
      () => writers.every((w) => w.dataEvents().at(-1)?.serverClock === final.clock),
      5_000,
    );
    writers.forEach((w, i) => assertConsecutive(w.dataEvents(), starts[i]!, `writer ${i}`));
  } finally {
    await closeAll(writers);
  }
});

Deno.test("a killed isolate: acknowledged pushes survive; its clients reconnect elsewhere and converge", async () => {
  await using cluster = await startCluster(2);
  const room = "crash";
  const alive = [true, true];
  // The real client of isolate 1 reconnects to whichever isolate is alive.
  let turn = 0;
  const anyAlive = () => {
    const live = [0, 1].filter((i) => alive[i]);
    return cluster.roomUrl(live[turn++ % live.length]!, room);
  };
  const clients: TestClient[] = [];
  const pushers: RawSocket[] = [];
  const acked = new Set<string>();
  let stop = false;
  try {
    clients.push(connectClient(cluster.roomUrl(0, room)));
    clients.push(connectClient(() => alive[1] ? cluster.roomUrl(1, room) : anyAlive()));
    await Promise.all(clients.map((c) => c.loaded));
    for (let i = 0; i < 2; i++) pushers.push((await connectRaw(cluster.roomUrl(i, room))).socket);
    // A stream of pushes on both isolates; an id counts once its push_result commits it.
    const streams = pushers.map((socket, i) =>
      pushUntilStopped(socket, `p${i}-`, acked, () => stop)
    );
    // Real clients edit too.
    for (let n = 0; n < 5; n++) {
      clients.forEach((c, i) =>
        c.store.put([geoShape(createShapeId(`rc${i}-${n}`)) as unknown as TLRecord])
      );
      await new Promise((resolve) => setTimeout(resolve, 30));
    }
    await until(() => acked.size >= 20, 10_000);
    alive[1] = false;
    cluster.isolates.killIsolate(1);
    await new Promise((resolve) => setTimeout(resolve, 300));
    stop = true;
    await Promise.all(streams);
    // The dead isolate's real client is back (on isolate 0) and both converge.
    clients[1]!.store.put([geoShape(createShapeId("after-crash")) as unknown as TLRecord]);
    await until(
      () =>
        clients.every((c) => c.store.has(createShapeId("after-crash"))) &&
        sameDocument(clients.map((c) => c.store)),
      15_000,
    );
    const final = await documentAt(cluster.roomUrl(0, room));
    for (const id of acked) assert.ok(final.ids.has(id), `acknowledged ${id} lost`);
    for (const client of clients) {
      for (let n = 0; n < 5; n++) {
        assert.ok(client.store.has(createShapeId(`rc0-${n}`)));
        assert.ok(client.store.has(createShapeId(`rc1-${n}`)));
      }
    }
  } finally {
    stop = true;
    await closeAll(clients);
    await closeAll(pushers);
  }
});

Deno.test("ROOM_FULL counts sessions on every isolate; a killed isolate's presence and slots expire", async () => {
  const ttl = 2_000;
  await using cluster = await startCluster(2, {
    MAX_SESSIONS_PER_ROOM: "3",
    ROOM_SESSION_TTL_MS: String(ttl),
  });
  const room = "full";
  const sockets: RawSocket[] = [];
  try {
    const observer = (await connectRaw(cluster.roomUrl(0, room))).socket;
    sockets.push(observer);
    sockets.push((await connectRaw(cluster.roomUrl(0, room))).socket);
    const remote = (await connectRaw(cluster.roomUrl(1, room))).socket;
    sockets.push(remote);
    // A fourth session, on the isolate that serves only one of the three: the room is full.
    const { socket: fourth } = await openAndConnect(cluster, 1, room);
    sockets.push(fourth);
    assert.deepEqual(await fourth.closed, { code: 4099, reason: "ROOM_FULL" });

    // The remote session's presence reaches the observer on the other isolate.
    remote.send({ type: "push", clientClock: 0, presence: ["put", presenceRecord(7)] });
    const seen = await observer.waitForEvent(
      (e: Frame) => Object.keys(e.diff ?? {}).some((id) => id.startsWith("instance_presence:")),
      3_000,
    );
    const presenceId = Object.keys(seen.diff).find((id) => id.startsWith("instance_presence:"))!;
    const killedAt = Date.now();
    cluster.isolates.killIsolate(1);
    await observer.waitForEvent(
      (e: Frame) => e.type === "patch" && e.diff[presenceId]?.[0] === "remove",
      ttl + 6_000,
    );
    const elapsed = Date.now() - killedAt;
    // Bound: TTL + presence sweep (2 s) + poll (1 s), plus scheduling slack.
    assert.ok(elapsed <= ttl + 4_000, `presence removed after ${elapsed} ms`);
    // Its slot is free again.
    const { socket: again, reply } = await connectRaw(cluster.roomUrl(0, room));
    sockets.push(again);
    assert.equal(reply.type, "connect");
  } finally {
    await closeAll(sockets);
  }
});

/** Opens a socket and sends connect without waiting for the reply (it may be refused). */
async function openAndConnect(
  cluster: Cluster,
  index: number,
  room: string,
): Promise<{ socket: RawSocket }> {
  const socket = await openRaw(cluster.roomUrl(index, room));
  socket.send(connectRequest());
  return { socket };
}

Deno.test("eviction: a draining isolate closes with 1012; the real client resumes on another without a wipe", async () => {
  await using cluster = await startCluster(2);
  const room = "evict";
  let evicted = false;
  const mover = connectClient(() => cluster.roomUrl(evicted ? 0 : 1, room), {
    sessionId: "mover",
  });
  const stayer = connectClient(cluster.roomUrl(0, room));
  const sockets: RawSocket[] = [];
  try {
    await Promise.all([mover.loaded, stayer.loaded]);
    for (let n = 0; n < 5; n++) {
      mover.store.put([geoShape(createShapeId(`m${n}`)) as unknown as TLRecord]);
    }
    await until(() => shapeCount(stayer.store) === 5, 5_000);
    const raw = await connectRaw(cluster.roomUrl(1, room));
    sockets.push(raw.socket);
    // Watch the real client's store: a wipe_all would remove document records.
    let removedDocs = 0;
    const stopListening = mover.store.listen((entry) => {
      removedDocs += Object.values(entry.changes.removed).filter((r) =>
        mover.store.scopedTypes.document.has(r.typeName)
      ).length;
    });
    evicted = true;
    await cluster.isolates.stopIsolate(1, "SIGINT");
    assert.equal((await raw.socket.closed).code, 1012);
    // The raw client resumes on isolate 0 from its last clock: incremental.
    const resumed = await connectRaw(cluster.roomUrl(0, room), {
      lastServerClock: raw.reply.serverClock,
    });
    sockets.push(resumed.socket);
    assert.equal(resumed.reply.hydrationType, "wipe_presence");
    // The real client reconnects to isolate 0 and keeps editing.
    mover.store.put([geoShape(createShapeId("after")) as unknown as TLRecord]);
    await until(() => stayer.store.has(createShapeId("after")), 10_000);
    await until(() => sameDocument([mover.store, stayer.store]), 5_000);
    stopListening();
    assert.equal(removedDocs, 0, "the reconnect wiped the document");
    assert.deepEqual(mover.errors, []);
    // Presence of the mover is visible on the stayer again after the move.
    await until(() => presenceRecords(stayer.store).length >= 1, 5_000);
  } finally {
    await closeAll([mover, stayer]);
    await closeAll(sockets);
  }
});

Deno.test("3 isolates: with polling off, each one's changes reach the other two over the bus (a MessagePort per pair)", async () => {
  // ROOM_POLL_MS=0: no isolate reads the room's clock on its own, so only a bus message can tell it
  // about a change another isolate committed (or carry a push to the room's writer).
  await using cluster = await startCluster(3, { ROOM_POLL_MS: "0" });
  const room = "ports";
  const sockets: RawSocket[] = [];
  try {
    for (let i = 0; i < 3; i++) sockets.push((await connectRaw(cluster.roomUrl(i, room))).socket);
    for (let i = 0; i < 3; i++) {
      const id = `shape:from-${i}`;
      sockets[i]!.send({ type: "push", clientClock: 0, diff: { [id]: ["put", geoShape(id)] } });
      await sockets[i]!.waitForEvent((e) => e.type === "push_result", 5_000);
      for (const socket of sockets.filter((_, j) => j !== i)) {
        await socket.waitForEvent((e) => e.type === "patch" && id in e.diff, 5_000);
      }
    }
  } finally {
    await closeAll(sockets);
  }
});

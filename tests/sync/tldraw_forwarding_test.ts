/**
 * Forwarding pushes to a room's writer (sync/tldraw/forwarding.ts): with one room's sessions on
 * two isolates, the one that is not the writer sends its pushes there instead of racing for the
 * clock; its clients see the same protocol as anywhere else, and every fault (lost messages, a
 * writer that stops answering or leaves, a commit landing while the forwarder gives up) ends with
 * every push committed exactly once, in order.
 */
import assert from "node:assert/strict";
import { FakeSocket, sleep, until } from "../helpers/fake_socket.ts";
import { connectRequest, geoShape, presenceRecord } from "../helpers/raw_socket.ts";
import { withOverrides } from "../helpers/overrides.ts";
import { silentLogger } from "../../log.ts";
import type { Bus, BusEnvelope } from "../../sync/bus/bus.ts";
import { MemoryBusHub } from "../../sync/bus/memory_bus.ts";
import { parseForwardMessage } from "../../sync/tldraw/forwarding.ts";
import { KvRoomStore } from "../../sync/tldraw/kv_room_store.ts";
import { forwardTopic, type RoomConnection, RoomManager } from "../../sync/tldraw/room_manager.ts";
import type { RoomStore } from "../../sync/tldraw/room_store.ts";

interface Client {
  socket: FakeSocket;
  connection: RoomConnection;
}

interface Isolate {
  manager: RoomManager;
  store: RoomStore;
  /** Commits this isolate made (each a store write checked against the clock). */
  commits: number;
  join(sessionId: string, isReadonly?: boolean): Promise<Client>;
}

/** The bus between the isolates: forwarding messages seen (by kind, lost ones too), and faults. */
interface Net {
  traffic: Record<string, number>;
  /** Another endpoint on the same bus (to send what an isolate could have sent). */
  tap: Bus;
  /** Loses every delivery for which `rule` holds (until replaced). */
  drop(rule: (envelope: BusEnvelope, to: string) => boolean): void;
}

async function withIsolates(
  fn: (isolates: [Isolate, Isolate], net: Net) => Promise<void>,
  overrides: (index: number, store: RoomStore) => Partial<RoomStore> = () => ({}),
): Promise<void> {
  const kv = await Deno.openKv(":memory:");
  const hub = new MemoryBusHub();
  let rule = (_envelope: BusEnvelope, _to: string) => false;
  const net: Net = { traffic: {}, tap: hub.connect("tap"), drop: (next) => rule = next };
  hub.setDropRule((envelope, to) => {
    const kind = forwardKind(envelope);
    if (kind) net.traffic[kind] = (net.traffic[kind] ?? 0) + 1;
    return rule(envelope, to);
  });
  const buses: Bus[] = [hub.connect("one"), hub.connect("two")];
  const isolates = buses.map((bus, index): Isolate => {
    const base = new KvRoomStore(kv);
    const replaced = overrides(index, base);
    const isolate: Isolate = {
      manager: undefined as unknown as RoomManager,
      store: withOverrides<RoomStore>(base, {
        ...replaced,
        commitSteps: (...args) => {
          isolate.commits++;
          return (replaced.commitSteps ?? base.commitSteps.bind(base))(...args);
        },
      }),
      commits: 0,
      join: async (sessionId, isReadonly = false) => {
        const socket = new FakeSocket();
        const connection = isolate.manager.connect("room", socket, { sessionId, isReadonly });
        connection.message(JSON.stringify(connectRequest()));
        await until(() => socket.sent.some((f) => f.type === "connect"));
        return { socket, connection };
      },
    };
    isolate.manager = new RoomManager({
      store: isolate.store,
      log: silentLogger,
      bus,
      isolateId: `isolate-${index}`,
      timeouts: { poll: 200, idle: 10_000 },
    });
    return isolate;
  });
  try {
    await fn(isolates as [Isolate, Isolate], net);
  } finally {
    for (const isolate of isolates) await isolate.manager.close();
    await sleep(10);
    for (const bus of [...buses, net.tap]) await bus.close();
    kv.close();
  }
}

function forwardKind(envelope: BusEnvelope): string | undefined {
  if (!envelope.topic.startsWith("tldraw-fwd:")) return undefined;
  return parseForwardMessage(envelope.body)?.kind;
}

function push(client: Client, clientClock: number, diff: unknown, presence?: unknown): void {
  client.connection.message(JSON.stringify({
    type: "push",
    clientClock,
    ...(diff === undefined ? {} : { diff }),
    ...(presence === undefined ? {} : { presence }),
  }));
}

function results(client: Client) {
  return client.socket.dataEvents().filter((e) => e.type === "push_result");
}

/** Every clock the room's log holds once, and the origins of its steps (none twice). */
async function assertLogClean(store: RoomStore, clock: number): Promise<void> {
  const steps = await store.stepsSince("room", 0);
  assert.equal(steps.kind, "steps");
  if (steps.kind !== "steps") return;
  assert.deepEqual(steps.steps.map((s) => s.clock), Array.from({ length: clock }, (_, i) => i + 1));
  const origins = steps.steps.flatMap((s) => (s.origin ? [s.origin] : []));
  assert.equal(new Set(origins).size, origins.length, `an origin committed twice: ${origins}`);
}

/** `a` (on the first isolate) makes it the room's writer. */
async function writerOnOne(a: Client): Promise<void> {
  push(a, 0, { "shape:w": ["put", geoShape("shape:w")] });
  await until(() => results(a).length === 1);
}

Deno.test("forwarding: the other isolate's pushes are committed by the writer, answered as usual", async () => {
  await withIsolates(async ([one, two], { traffic }) => {
    const a = await one.join("a");
    await writerOnOne(a);
    const b = await two.join("b");
    const commitsBefore = two.commits;
    push(b, 0, { "shape:b1": ["put", geoShape("shape:b1")] });
    push(b, 1, undefined, ["put", presenceRecord(1)]);
    push(b, 2, { "shape:b1": ["patch", { x: ["put", 42] }] });
    await until(() => results(b).length === 3);
    assert.deepEqual(results(b).map((r) => [r.clientClock, r.action]), [
      [0, "commit"],
      [1, "commit"],
      [2, "commit"],
    ]);
    assert.deepEqual(results(b).map((r) => r.serverClock), [2, 2, 3]);
    assert.equal(two.commits, commitsBefore, "the second isolate made no commit");
    assert.ok((traffic.push ?? 0) >= 1, JSON.stringify(traffic));
    // Commits need no reply: the forwarder answers them from the writer's clock notices.
    assert.equal(traffic.result ?? 0, 0, JSON.stringify(traffic));
    // The writer's own session sees both commits and b's presence.
    await until(() => a.socket.dataEvents().some((e) => e.serverClock === 3));
    const room = await one.manager.get("room");
    assert.equal(room.getRecord("shape:b1")?.x, 42);
    await until(() =>
      a.socket.dataEvents().some((e) =>
        Object.keys(e.diff ?? {}).some((id) => id.startsWith("instance_presence:"))
      )
    );
    // b never receives its own changes as a patch (spec 5.1).
    assert.ok(!b.socket.dataEvents().some((e) => e.type === "patch" && e.diff?.["shape:b1"]));
    await assertLogClean(one.store, 3);
  });
});

Deno.test("forwarding: while the writer's store is busy, pushes forwarded to it join its next group", async () => {
  // The writer's store is writing something else until `release` (a gate on its write slot).
  let gate: Promise<void> | undefined;
  let release = () => {};
  await withIsolates(async ([one, two], { traffic }) => {
    const a = await one.join("a");
    await writerOnOne(a);
    const b = await two.join("b");
    push(b, 0, { "shape:b": ["put", geoShape("shape:b")] });
    await until(() => results(b).length === 1);
    gate = new Promise((resolve) => release = resolve);
    const commits = one.commits;
    const forwarded = traffic.push ?? 0;
    push(a, 1, { "shape:w": ["patch", { x: ["put", 1] }] });
    push(b, 1, { "shape:b": ["patch", { x: ["put", 2] }] });
    await until(() => (traffic.push ?? 0) > forwarded);
    await sleep(20);
    assert.equal(one.commits, commits, "the writer waited for its store");
    gate = undefined;
    release();
    await until(() => results(a).length === 2 && results(b).length === 2);
    assert.equal(one.commits, commits + 1, "both pushes went into one commit");
    assert.deepEqual([results(a)[1]!.serverClock, results(b)[1]!.serverClock].sort(), [3, 4]);
    assert.equal(two.commits, 0);
    await assertLogClean(one.store, 4);
  }, (index) => index === 0 ? { writeSlot: () => gate } : {});
});

Deno.test("forwarding: the writer's verdicts reach the pusher (rejected, discarded, rebased); read-only stays local", async () => {
  await withIsolates(async ([one, two], { traffic }) => {
    const a = await one.join("a");
    await writerOnOne(a);
    const ro = await two.join("ro", true);
    const pushesBefore = traffic.push ?? 0;
    push(ro, 0, { "shape:ro": ["put", geoShape("shape:ro")] });
    await until(() => results(ro).length === 1);
    assert.equal(results(ro)[0].action, "discard");
    assert.equal(traffic.push ?? 0, pushesBefore, "read-only ops are not forwarded");

    const b = await two.join("b");
    // A patch of a record that does not exist changes nothing.
    push(b, 0, { "shape:none": ["patch", { x: ["put", 1] }] });
    // A put over an existing record is stored as a patch: the client is told to rebase.
    push(b, 1, { "shape:w": ["put", geoShape("shape:w", { x: 7 })] });
    await until(() => results(b).length === 2);
    assert.equal(results(b)[0].action, "discard");
    assert.deepEqual(results(b)[1].action, {
      rebaseWithDiff: { "shape:w": ["patch", { x: ["put", 7] }] },
    });
    // An invalid record closes only the pusher's session, with the writer's reason.
    const c = await two.join("c");
    push(c, 0, { "shape:bad": ["put", geoShape("shape:bad", { x: "nope" })] });
    await until(() => c.socket.closedWith !== null);
    assert.deepEqual(c.socket.closedWith, { code: 4099, reason: "INVALID_RECORD" });
    assert.equal((await one.manager.get("room")).getRecord("shape:bad"), undefined);
    assert.equal(b.socket.closedWith, null);
    assert.equal(a.socket.closedWith, null);
  });
});

Deno.test("forwarding: lost replies and notices are repaired from the log; pushes keep their order", async () => {
  await withIsolates(async ([one, two], net) => {
    const a = await one.join("a");
    await writerOnOne(a);
    const b = await two.join("b");
    // Nothing reaches the second isolate any more: no reply, no clock notice.
    net.drop((_envelope, to) => to === "two");
    for (let i = 0; i < 5; i++) push(b, i, { [`shape:o${i}`]: ["put", geoShape(`shape:o${i}`)] });
    await until(() => results(b).length === 5, 5_000);
    assert.deepEqual(results(b).map((r) => r.clientClock), [0, 1, 2, 3, 4]);
    assert.ok(results(b).every((r) => r.action === "commit"));
    const clocks = results(b).map((r) => r.serverClock);
    assert.deepEqual(clocks, [...clocks].sort((x, y) => x - y));
    await assertLogClean(one.store, 6);
  });
});

Deno.test("forwarding: a writer that stops answering is replaced; nothing is committed twice", async () => {
  // The writer's commits of forwarded pushes are slow and its replies lost: the forwarder gives
  // up while one is in flight and commits it itself, then commits the next push of the same
  // session. The writer's late retry must not apply the first one again (that would undo the
  // second: x = 1 again).
  let slow = false;
  await withIsolates(async ([one, two], { traffic, drop }) => {
    const a = await one.join("a");
    await writerOnOne(a);
    const b = await two.join("b");
    slow = true;
    drop((envelope) => envelope.origin === "one" && forwardKind(envelope) === "result");
    push(b, 0, { "shape:w": ["patch", { x: ["put", 1] }] });
    await until(() => results(b).length === 1, 6_000);
    push(b, 1, { "shape:w": ["patch", { x: ["put", 2] }] });
    await until(() => results(b).length === 2, 2_000);
    assert.deepEqual(results(b).map((r) => r.action), ["commit", "commit"]);
    assert.ok(two.commits > 0, "the second isolate took over");
    assert.ok((traffic.push ?? 0) >= 2, "re-sent before giving up");
    // Let the writer's slow commit fail and its retry run.
    await sleep(1_000);
    slow = false;
    const rooms = [await one.manager.get("room"), await two.manager.get("room")];
    await until(() => rooms[0]!.clock === rooms[1]!.clock, 3_000);
    for (const room of rooms) assert.equal(room.getRecord("shape:w")?.x, 2);
    await assertLogClean(one.store, rooms[0]!.clock);
  }, (index, store) =>
    index === 0
      ? {
        commitSteps: async (...args) => {
          if (slow && args[2].some((step) => step.origin)) await sleep(1_500);
          return await store.commitSteps(...args);
        },
      }
      : {});
});

Deno.test("forwarding: when the writer's room closes, the other isolate commits at once", async () => {
  await withIsolates(async ([one, two], { traffic }) => {
    const a = await one.join("a");
    await writerOnOne(a);
    const b = await two.join("b");
    push(b, 0, { "shape:f": ["put", geoShape("shape:f")] });
    await until(() => results(b).length === 1);
    await one.manager.close();
    await until(() => (traffic.resign ?? 0) > 0);
    await sleep(20);
    const started = Date.now();
    push(b, 1, { "shape:g": ["put", geoShape("shape:g")] });
    await until(() => results(b).length === 2);
    assert.ok(Date.now() - started < 500, "no wait for a timeout");
    assert.equal(results(b)[1].action, "commit");
  });
});

Deno.test("forwarding: a late copy of a forwarded push is answered from the origin index, not applied again", async () => {
  await withIsolates(async ([one], { tap }) => {
    const a = await one.join("a");
    await writerOnOne(a);
    const room = await one.manager.get("room");
    // What the second isolate would send: one push, twice (a copy that was delayed on the bus).
    const batch = {
      kind: "push",
      to: "isolate-0",
      from: "isolate-1",
      batch: 1,
      base: room.clock,
      pushes: [{
        origin: "late:1",
        session: "b",
        diff: { "shape:w": ["patch", { x: ["put", 1] }] },
      }],
    };
    await tap.publish(forwardTopic("room"), batch);
    await until(() => room.getRecord("shape:w")?.x === 1);
    push(a, 1, { "shape:w": ["patch", { x: ["put", 3] }] });
    await until(() => results(a).length === 2);
    const clock = room.clock;
    await tap.publish(forwardTopic("room"), batch);
    await sleep(100);
    await room.idle();
    assert.equal(room.clock, clock, "the copy made no commit");
    assert.equal(room.getRecord("shape:w")?.x, 3);
    await assertLogClean(one.store, clock);
  });
});

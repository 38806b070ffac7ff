/**
 * Seeded randomized multi-isolate test of the room engine, in the spirit of tldraw's own sync fuzz
 * test: several simulated isolates (room managers on one KV, linked by the memory bus) serve one
 * room; the bus drops and reorders messages; writers die (their bus cut, their rooms closed) and
 * new isolates join; sessions push creates, updates, deletes and presence from random isolates and
 * reconnect now and then. Each session keeps the document its events describe. At the end (the
 * network healed) every push on a live socket is answered, every session's document equals the
 * store's, every acknowledged create (never deleted) is in it and every acknowledged delete is not,
 * and no session ever saw the clock go back.
 *
 * The remote variant runs the same on a KV whose operations take a random 0–15 ms and so land out of
 * order, with the stores pipelining commits as on Deno Deploy (kv_pipeline.ts).
 *
 * Seeds: a fixed list; `FUZZ_SEEDS=<n>` runs n random ones, `FUZZ_ROUNDS=<n>` longer,
 * `FUZZ_SEED=<seed>` replays one (a failure prints its seed). Timing still varies between runs, so
 * a replay follows the same choices, not necessarily the same interleaving.
 */
import assert from "node:assert/strict";
import { FakeSocket, sleep, until } from "../helpers/fake_socket.ts";
import { fuzzRounds, fuzzSeeds, Random, withSeed } from "../helpers/fuzz.ts";
import { connectRequest, geoShape, presenceRecord } from "../helpers/raw_socket.ts";
import { silentLogger } from "../../log.ts";
import type { Bus } from "../../sync/bus/bus.ts";
import { MemoryBusHub } from "../../sync/bus/memory_bus.ts";
import { applyObjectDiff, type ObjectDiff } from "../../sync/tldraw/diff.ts";
import { KvRoomStore } from "../../sync/tldraw/kv_room_store.ts";
import { jitteryKv } from "../helpers/jittery_kv.ts";
import type { WireNetworkDiff, WireRecord } from "../../sync/tldraw/protocol.ts";
import { type RoomConnection, RoomManager } from "../../sync/tldraw/room_manager.ts";

const NAME = "tldraw isolates fuzz";
const SEEDS = fuzzSeeds([101, 202, 303]);
const ROUNDS = fuzzRounds(120);
const ROOM = "fuzz";
const TIMEOUTS = {
  poll: 100,
  presenceSweep: 300,
  sessionTtl: 1_500,
  heartbeat: 400,
  idle: 60_000,
  connect: 10_000,
  removal: 200,
};

interface Isolate {
  id: string;
  bus: Bus;
  manager: RoomManager;
  alive: boolean;
}

/** A session as its client sees it: the document its events describe, and its pushes. */
class FuzzClient {
  socket = new FakeSocket();
  connection: RoomConnection | undefined;
  isolate: Isolate | undefined;
  connected = false;
  /** Frames of the current socket already applied. */
  #seen = 0;
  lastClock = -1;
  readonly doc = new Map<string, WireRecord>();
  #clientClock = 0;
  readonly #pending = new Map<number, { diff?: WireNetworkDiff; create?: string; del?: string }>();
  /** Shapes this client created, and which of its creates and deletes were acknowledged. */
  readonly created: string[] = [];
  readonly ackedCreates = new Set<string>();
  readonly ackedDeletes = new Set<string>();
  readonly deleteTried = new Set<string>();

  constructor(readonly name: string) {}

  join(isolate: Isolate): void {
    this.socket = new FakeSocket();
    this.#seen = 0;
    this.connected = false;
    this.#pending.clear();
    this.isolate = isolate;
    this.connection = isolate.manager.connect(ROOM, this.socket, {
      sessionId: this.name,
      isReadonly: false,
    });
    this.connection.message(
      JSON.stringify(connectRequest({ lastServerClock: this.lastClock })),
    );
  }

  /** Pushes on the current socket still waiting for their push_result. */
  get unanswered(): number {
    return this.#pending.size;
  }

  /** Leaves on its own (a tab reload). */
  leave(): void {
    this.connection?.close();
    this.socket.close();
  }

  get closed(): boolean {
    return this.socket.closedWith !== null;
  }

  push(
    diff: WireNetworkDiff | undefined,
    presence?: unknown,
    note: { create?: string; del?: string } = {},
  ) {
    const clientClock = this.#clientClock++;
    this.#pending.set(clientClock, { ...(diff ? { diff } : {}), ...note });
    this.connection!.message(JSON.stringify({
      type: "push",
      clientClock,
      ...(diff ? { diff } : {}),
      ...(presence ? { presence } : {}),
    }));
  }

  /** Applies every frame received since the last call. */
  process(): void {
    const frames = this.socket.sent;
    for (; this.#seen < frames.length; this.#seen++) {
      const frame = frames[this.#seen];
      if (frame.type === "connect") {
        this.#clock(frame.serverClock, "connect");
        if (frame.hydrationType === "wipe_all") this.doc.clear();
        this.#apply(frame.diff);
        this.connected = true;
      } else if (frame.type === "data") {
        for (const event of frame.data) this.#event(event);
      }
    }
    const closed = this.socket.closedWith;
    if (closed?.code === 4099) {
      throw new Error(`${this.name} was rejected: ${closed.reason}`);
    }
  }

  // deno-lint-ignore no-explicit-any
  #event(event: any): void {
    this.#clock(event.serverClock, event.type);
    if (event.type === "patch") return this.#apply(event.diff);
    if (event.type !== "push_result") return;
    const pending = this.#pending.get(event.clientClock);
    this.#pending.delete(event.clientClock);
    if (!pending || event.action === "discard") return;
    if (event.action === "commit") {
      if (pending.diff) this.#apply(pending.diff);
    } else this.#apply(event.action.rebaseWithDiff);
    if (pending.create) this.ackedCreates.add(pending.create);
    if (pending.del) this.ackedDeletes.add(pending.del);
  }

  #clock(clock: number, what: string): void {
    if (clock < this.lastClock) {
      throw new Error(`${this.name}: ${what} at clock ${clock} after ${this.lastClock}`);
    }
    this.lastClock = clock;
  }

  #apply(diff: WireNetworkDiff): void {
    for (const [id, op] of Object.entries(diff)) {
      if (id.startsWith("instance_presence:")) continue;
      if (op[0] === "put") this.doc.set(id, op[1] as WireRecord);
      else if (op[0] === "remove") this.doc.delete(id);
      else if (op[0] === "patch") {
        const before = this.doc.get(id);
        if (before) this.doc.set(id, applyObjectDiff(before, op[1] as ObjectDiff));
      }
    }
  }
}

function docText(doc: Map<string, WireRecord>): string {
  return JSON.stringify([...doc.entries()].sort(([a], [b]) => a.localeCompare(b)));
}

async function run(random: Random, remote: boolean): Promise<void> {
  const kv = await Deno.openKv(":memory:");
  const hub = new MemoryBusHub();
  // The bus's faults come from a source of their own: deliveries happen in an order the choices
  // below do not control.
  const faults = new Random(random.seed ^ 0x5bd1e995);
  const latency = new Random(random.seed ^ 0x27d4eb2d);
  const storeKv = remote ? jitteryKv(kv, () => latency.int(0, 15)).kv : kv;
  const storeOptions = remote ? { remote: true, commitsInFlight: 8 } : {};
  const dead = new Set<string>();
  let healed = false;
  hub.setDropRule((envelope, to) =>
    dead.has(to) || dead.has(envelope.origin) || (!healed && faults.chance(0.1))
  );
  hub.setDelayRule(() => !healed && faults.chance(0.3) ? faults.int(1, 40) : 0);
  const isolates: Isolate[] = [];
  let spawned = 0;
  const spawn = (): Isolate => {
    const id = `isolate-${spawned++}`;
    const bus = hub.connect(id);
    const manager = new RoomManager({
      store: new KvRoomStore(storeKv, storeOptions),
      log: silentLogger,
      bus,
      isolateId: id,
      timeouts: TIMEOUTS,
    });
    const isolate = { id, bus, manager, alive: true };
    isolates.push(isolate);
    return isolate;
  };
  const alive = () => isolates.filter((i) => i.alive);
  const kill = async (isolate: Isolate) => {
    // Its bus goes first (nothing it says afterwards arrives), then its rooms end.
    dead.add(isolate.id);
    isolate.alive = false;
    await isolate.manager.close();
    await isolate.bus.close();
  };
  /** One random thing a session does: create, update or delete a shape, move, or leave. */
  const act = (client: FuzzClient) => {
    if (!client.connected || client.closed) return;
    const roll = random.next();
    if (roll < 0.35) {
      const id = `shape:${client.name}n${client.created.length}`;
      client.created.push(id);
      const diff = { [id]: ["put", geoShape(id, { x: random.int(0, 500) })] } as WireNetworkDiff;
      client.push(diff, undefined, { create: id });
    } else if (roll < 0.65 && client.created.length > 0) {
      const id = random.pick(client.created);
      client.push({ [id]: ["patch", { x: ["put", random.int(0, 500)] }] } as WireNetworkDiff);
    } else if (roll < 0.75 && client.created.length > 0) {
      const id = random.pick(client.created);
      client.deleteTried.add(id);
      client.push({ [id]: ["remove"] } as WireNetworkDiff, undefined, { del: id });
    } else if (roll < 0.95) {
      client.push(undefined, ["put", presenceRecord(random.int(0, 500))]);
    } else {
      client.leave();
    }
  };
  for (let i = 0; i < 3; i++) spawn();
  const clients = Array.from({ length: 5 }, (_, i) => new FuzzClient(`c${i}`));
  try {
    for (const client of clients) client.join(random.pick(alive()));
    await until(() => {
      for (const client of clients) client.process();
      return clients.every((c) => c.connected);
    }, 5_000);

    for (let round = 0; round < ROUNDS; round++) {
      for (const client of clients) {
        client.process();
        if (client.closed && alive().length > 0) client.join(random.pick(alive()));
      }
      if (round > 0 && round % 40 === 0 && alive().length > 1) {
        // The room's writer dies (the isolate that committed last), a fresh isolate joins.
        const meta = (await new KvRoomStore(kv).load(ROOM))?.meta;
        const writer = alive().find((i) => i.id === meta?.writer?.isolateId) ??
          random.pick(alive());
        await kill(writer);
        spawn();
      }
      // A few sessions act at once (their pushes meet in groups and races), then time passes.
      for (let n = random.int(1, 3); n > 0; n--) act(random.pick(clients));
      await sleep(random.int(0, 12));
    }

    // Quiet, and the network healed: every push is answered (a push forwarded to a writer that
    // is slow or gone waits for its re-send or its fallback), and everyone converges with the store.
    healed = true;
    const store = new KvRoomStore(kv);
    let storeDoc = new Map<string, WireRecord>();
    const settled = async () => {
      for (const client of clients) {
        client.process();
        if (client.closed) client.join(random.pick(alive()));
      }
      if (!clients.every((c) => c.connected && c.unanswered === 0)) return false;
      const data = await store.load(ROOM);
      storeDoc = new Map(data!.records.map((r) => [r.state.id, r.state]));
      const text = docText(storeDoc);
      return clients.every((c) =>
        c.lastClock === data!.meta.documentClock && docText(c.doc) === text
      );
    };
    const deadline = Date.now() + 20_000;
    while (!(await settled())) {
      if (Date.now() > deadline) {
        const state = clients.map((c) => `${c.name}@${c.lastClock}/${c.unanswered}`).join(" ");
        throw new Error(`sessions did not settle with the store: ${state}`);
      }
      await sleep(50);
    }
    // No forwarded push was committed twice (each origin once in the log).
    const log = await store.stepsSince(ROOM, 0);
    assert.equal(log.kind, "steps");
    if (log.kind === "steps") {
      const origins = log.steps.flatMap((step) => step.origin ? [step.origin] : []);
      assert.equal(new Set(origins).size, origins.length, "an origin committed twice");
    }
    for (const client of clients) {
      for (const id of client.ackedCreates) {
        if (!client.deleteTried.has(id)) assert.ok(storeDoc.has(id), `acknowledged ${id} lost`);
      }
      for (const id of client.ackedDeletes) {
        assert.ok(!storeDoc.has(id), `acknowledged delete of ${id} undone`);
      }
    }
  } finally {
    for (const isolate of isolates) {
      if (isolate.alive) {
        await isolate.manager.close();
        await isolate.bus.close();
      }
    }
    // Deliveries still on the (delaying) bus land before the test ends.
    await sleep(60);
    kv.close();
  }
}

for (const seed of SEEDS) {
  Deno.test(`${NAME}: seed ${seed}`, () => withSeed(NAME, seed, (r) => run(r, false)));
  const remote = `${NAME}, remote KV`;
  Deno.test(`${remote}: seed ${seed}`, () => withSeed(remote, seed, (r) => run(r, true)));
}

/**
 * One contract for every RoomStore implementation: memory and Deno KV must behave the same.
 */
import assert from "node:assert/strict";
import { withKvMethods } from "../../sync/kv_write_lock.ts";
import { KvRoomStore } from "../../sync/tldraw/kv_room_store.ts";
import { MemoryRoomStore } from "../../sync/tldraw/memory_room_store.ts";
import type { WireRecord } from "../../sync/tldraw/protocol.ts";
import {
  type ChangeSet,
  type LogStep,
  type RoomData,
  type RoomStore,
  RoomStoreError,
  type StoredRecord,
  StoreFailure,
} from "../../sync/tldraw/room_store.ts";

interface Harness {
  store: RoomStore;
  /** A second handle on the same storage (another isolate). */
  other: RoomStore;
  close(): void;
}

const implementations: Record<string, () => Promise<Harness>> = {
  memory: () => {
    const store = new MemoryRoomStore({ logSize: 5 });
    return Promise.resolve({ store, other: store, close: () => {} });
  },
  kv: async () => {
    const kv = await Deno.openKv(":memory:");
    return {
      store: new KvRoomStore(kv, { logSize: 5 }),
      other: new KvRoomStore(kv, { logSize: 5 }),
      close: () => kv.close(),
    };
  },
  // Every entry in the ring (as on a remote KV), none in the meta's tail.
  "kv, no log tail": async () => {
    const kv = await Deno.openKv(":memory:");
    return {
      store: new KvRoomStore(kv, { logSize: 5, logTail: false }),
      other: new KvRoomStore(kv, { logSize: 5, logTail: false }),
      close: () => kv.close(),
    };
  },
};

const shape = (id: string, extra: Record<string, unknown> = {}): WireRecord => ({
  id,
  typeName: "shape",
  ...extra,
});

const emptyRoom = (records: StoredRecord[] = []): RoomData => ({
  meta: { documentClock: 0, tombstoneHistoryStartsAtClock: 0, schema: { schemaVersion: 2 } },
  records,
  tombstones: new Map(),
});

/** One change set as one clock (the stores take groups of them). */
const commit = (store: RoomStore, roomId: string, clock: number, changes: ChangeSet) =>
  store.commitSteps(roomId, clock, [changes]);

/** Records by id; a store that gives `chars` must give the record's JSON length. */
function byId(records: StoredRecord[]): Record<string, StoredRecord> {
  // Read through the properties: a store may hand out records whose `state` is a getter.
  return Object.fromEntries(records.map((record) => {
    const { state, lastChangedClock, chars } = record;
    if (chars !== undefined) assert.equal(chars, JSON.stringify(state).length, state.id);
    return [state.id, { state, lastChangedClock }];
  }));
}

/** One clock of a room's history, as a test committed it. */
type Wrote = { clock: number; puts: WireRecord[]; deletes: string[] };

/**
 * `steps` are `history` as {@link RoomStore.stepsSince} may give it: one step per clock listing what
 * that clock wrote, except what a later clock of `history` changed again, which a step may leave out.
 */
function assertStepsOf(steps: readonly LogStep[], history: readonly Wrote[]): void {
  assert.deepEqual(steps.map((s) => s.clock), history.map((h) => h.clock));
  history.forEach((wrote, i) => {
    const later = new Set(
      history.slice(i + 1).flatMap((h) => [...h.puts.map((p) => p.id), ...h.deletes]),
    );
    const step = steps[i]!;
    const puts = byId(step.puts);
    for (const record of wrote.puts) {
      const put = puts[record.id];
      if (put) {
        assert.deepEqual(put, { state: record, lastChangedClock: wrote.clock }, `${wrote.clock}`);
      } else assert.ok(later.has(record.id), `clock ${wrote.clock} lacks ${record.id}`);
    }
    assert.deepEqual(
      Object.keys(puts).sort(),
      wrote.puts.map((p) => p.id).filter((id) => puts[id]).sort(),
    );
    for (const id of wrote.deletes) {
      assert.ok(
        step.deletes.includes(id) || later.has(id),
        `clock ${wrote.clock} lacks delete ${id}`,
      );
    }
    assert.ok(step.deletes.every((id) => wrote.deletes.includes(id)), `clock ${wrote.clock}`);
  });
}

for (const [name, open] of Object.entries(implementations)) {
  const test = (title: string, fn: (h: Harness) => Promise<void>) =>
    Deno.test(`RoomStore contract (${name}): ${title}`, async () => {
      const h = await open();
      try {
        await fn(h);
      } finally {
        h.close();
      }
    });

  test("a missing room loads as null and create is once only", async ({ store, other }) => {
    assert.equal(await store.load("r"), null);
    assert.equal(await store.readClock("r"), -1);
    assert.equal(
      await store.create("r", emptyRoom([{ state: shape("shape:a"), lastChangedClock: 0 }])),
      true,
    );
    assert.equal(await other.create("r", emptyRoom()), false);
    const data = await other.load("r");
    assert.equal(data?.meta.documentClock, 0);
    assert.deepEqual(data?.records.map((r) => r.state.id), ["shape:a"]);
  });

  test("commits advance the clock by one and record last-changed clocks", async ({ store, other }) => {
    await store.create("r", emptyRoom());
    const a = shape("shape:a", { x: 1 });
    assert.deepEqual(await commit(store, "r", 0, { puts: [{ record: a }], deletes: [] }), {
      ok: true,
      clock: 1,
    });
    const b = shape("shape:b");
    const a2 = { ...a, x: 2 };
    const r2 = await commit(store, "r", 1, {
      puts: [{ record: a2, prev: { state: a, lastChangedClock: 1 } }, { record: b }],
      deletes: [],
    });
    assert.deepEqual(r2, { ok: true, clock: 2 });
    const data = await other.load("r");
    assert.equal(data?.meta.documentClock, 2);
    const records = byId(data!.records);
    assert.deepEqual(records["shape:a"], { state: a2, lastChangedClock: 2 });
    assert.deepEqual(records["shape:b"], { state: b, lastChangedClock: 2 });
  });

  test("a commit against a stale clock is a conflict and changes nothing", async ({ store, other }) => {
    await store.create("r", emptyRoom());
    assert.equal(
      (await commit(other, "r", 0, { puts: [{ record: shape("shape:x") }], deletes: [] })).ok,
      true,
    );
    const lost = await commit(store, "r", 0, { puts: [{ record: shape("shape:y") }], deletes: [] });
    assert.deepEqual(lost, { ok: false, error: "conflict" });
    const data = await store.load("r");
    assert.deepEqual(data?.records.map((r) => r.state.id), ["shape:x"]);
    assert.equal(await store.readClock("r"), 1);
  });

  test("deletes leave tombstones and stepsSince reports puts and removes", async ({ store, other }) => {
    await store.create("r", emptyRoom());
    const a = shape("shape:a");
    const b = shape("shape:b");
    await commit(store, "r", 0, { puts: [{ record: a }, { record: b }], deletes: [] });
    await commit(store, "r", 1, {
      deletes: [{ id: "shape:a", prev: { state: a, lastChangedClock: 1 } }],
      puts: [],
    });
    const data = await other.load("r");
    assert.deepEqual([...data!.tombstones], [["shape:a", 2]]);
    assert.deepEqual(await other.stepsSince("r", 2), { kind: "none", clock: 2 });
    const since1 = await other.stepsSince("r", 1);
    assert.equal(since1.kind, "steps");
    if (since1.kind !== "steps") return;
    assert.equal(since1.clock, 2);
    assert.deepEqual(since1.steps, [{ clock: 2, puts: [], deletes: ["shape:a"] }]);
    const since0 = await other.stepsSince("r", 0);
    assert.equal(since0.kind, "steps");
    if (since0.kind !== "steps") return;
    assertStepsOf(since0.steps, [
      { clock: 1, puts: [a, b], deletes: [] },
      { clock: 2, puts: [], deletes: ["shape:a"] },
    ]);
    assert.deepEqual(since0.steps[1]!.deletes, ["shape:a"]);
    // Re-creating a deleted id clears its tombstone.
    await commit(store, "r", 2, { puts: [{ record: a }], deletes: [] });
    assert.deepEqual([...(await other.load("r"))!.tombstones], []);
  });

  test("the change log is bounded: older clocks are a gap", async ({ store }) => {
    await store.create("r", emptyRoom());
    for (let clock = 0; clock < 8; clock++) {
      await commit(store, "r", clock, { puts: [{ record: shape(`shape:${clock}`) }], deletes: [] });
    }
    assert.equal((await store.stepsSince("r", 1)).kind, "gap");
    assert.equal((await store.stepsSince("r", 5)).kind, "steps");
    assert.equal((await store.stepsSince("r", 99)).kind, "gap");
  });

  test("large records round-trip through chunks, also when replaced or deleted", async ({ store, other }) => {
    await store.create("r", emptyRoom());
    const big = shape("shape:big", { text: "é".repeat(200_000) });
    assert.equal((await commit(store, "r", 0, { puts: [{ record: big }], deletes: [] })).ok, true);
    let data = await other.load("r");
    assert.deepEqual(data?.records[0]?.state, big);
    const since = await other.stepsSince("r", 0);
    assert.equal(since.kind === "steps" && since.steps[0]?.puts[0]?.state.text, big.text);
    const smaller = { ...big, text: "x".repeat(70_000) };
    await commit(store, "r", 1, {
      puts: [{ record: smaller, prev: { state: big, lastChangedClock: 1 } }],
      deletes: [],
    });
    data = await other.load("r");
    assert.deepEqual(data?.records[0]?.state, smaller);
    await commit(store, "r", 2, {
      puts: [],
      deletes: [{ id: big.id, prev: { state: smaller, lastChangedClock: 2 } }],
    });
    data = await other.load("r");
    assert.deepEqual(data?.records, []);
  });

  test("a change set too large for one atomic write is still committed whole", async ({ store, other }) => {
    await store.create("r", emptyRoom());
    const puts = Array.from({ length: 5_000 }, (_, i) => ({
      record: shape(`shape:${i}`, { text: "y".repeat(1_000) }),
    }));
    puts.push({ record: shape("shape:huge", { text: "z".repeat(200_000) }) });
    assert.deepEqual(await commit(store, "r", 0, { puts, deletes: [] }), { ok: true, clock: 1 });
    const data = await other.load("r");
    assert.equal(data?.meta.documentClock, 1);
    assert.equal(data?.records.length, 5_001);
    assert.deepEqual(byId(data!.records)["shape:huge"]?.state, puts.at(-1)!.record);
    // The log entry of such a commit is too large to list ids: readers behind it reload.
    const since = await other.stepsSince("r", 0);
    assert.ok(since.kind === "gap" || since.kind === "steps");
    // And deleting them all is one commit too.
    const deletes = data!.records.map((r) => ({ id: r.state.id, prev: r }));
    assert.deepEqual(await commit(other, "r", 1, { puts: [], deletes }), { ok: true, clock: 2 });
    assert.equal((await store.load("r"))?.records.length, 0);
  });

  test("pruning tombstones moves the history cutoff", async ({ store, other }) => {
    await store.create("r", emptyRoom());
    const a = shape("shape:a");
    await commit(store, "r", 0, { puts: [{ record: a }], deletes: [] });
    await commit(store, "r", 1, {
      puts: [],
      deletes: [{ id: a.id, prev: { state: a, lastChangedClock: 1 } }],
    });
    assert.equal(await store.pruneTombstones("r", 1, 2), false);
    assert.equal(await store.pruneTombstones("r", 2, 2), true);
    const data = await other.load("r");
    assert.equal(data?.meta.tombstoneHistoryStartsAtClock, 2);
    assert.equal((await other.stepsSince("r", 1)).kind, "gap");
  });

  test("stepsSince gives one step per clock, in order, with what that clock wrote", async ({ store, other }) => {
    await store.create("r", emptyRoom());
    const a1 = shape("shape:a", { x: 1 });
    const a2 = shape("shape:a", { x: 2 });
    const b = shape("shape:b");
    const big = shape("shape:big", { text: "q".repeat(70_000) });
    await commit(store, "r", 0, { puts: [{ record: a1 }, { record: b }], deletes: [] });
    await commit(store, "r", 1, {
      puts: [{ record: a2, prev: { state: a1, lastChangedClock: 1 } }],
      deletes: [],
    });
    await commit(store, "r", 2, {
      puts: [],
      deletes: [{ id: b.id, prev: { state: b, lastChangedClock: 1 } }],
    });
    await commit(store, "r", 3, { puts: [{ record: big }], deletes: [] });
    assert.deepEqual(await other.stepsSince("r", 4), { kind: "none", clock: 4 });
    const since0 = await other.stepsSince("r", 0);
    assert.equal(since0.kind, "steps");
    if (since0.kind !== "steps") return;
    assert.deepEqual([since0.clock, since0.tombstoneHistoryStartsAtClock], [4, 0]);
    assertStepsOf(since0.steps, [
      { clock: 1, puts: [a1, b], deletes: [] },
      { clock: 2, puts: [a2], deletes: [] },
      { clock: 3, puts: [], deletes: ["shape:b"] },
      { clock: 4, puts: [big], deletes: [] },
    ]);
    // What no later clock changed is always there.
    assert.deepEqual(byId(since0.steps[1]!.puts)["shape:a"]?.state, a2);
    assert.deepEqual(since0.steps[2]!.deletes, ["shape:b"]);
    assert.deepEqual(byId(since0.steps[3]!.puts)["shape:big"]?.state, big);
    const from2 = await other.stepsSince("r", 2);
    assert.equal(from2.kind === "steps" && from2.steps.map((s) => s.clock).join(), "3,4");
  });

  test("stepsSince: a compacted log or a pruned history is a gap", async ({ store }) => {
    await store.create("r", emptyRoom());
    for (let clock = 0; clock < 8; clock++) {
      await commit(store, "r", clock, { puts: [{ record: shape(`shape:${clock}`) }], deletes: [] });
    }
    assert.equal((await store.stepsSince("r", 1)).kind, "gap");
    assert.equal((await store.stepsSince("r", 5)).kind, "steps");
    assert.equal((await store.stepsSince("r", 99)).kind, "gap");
    assert.equal(await store.pruneTombstones("r", 8, 7), true);
    assert.equal((await store.stepsSince("r", 6)).kind, "gap");
  });

  test("session entries carry the session's presence", async ({ store, other }) => {
    const now = Date.now();
    const presence = { presenceId: "instance_presence:p", record: shape("instance_presence:p") };
    await store.putSession("r", {
      sessionId: "s1",
      isolateId: "i1",
      lastSeen: now,
      expiresAt: now + 60_000,
      presence,
    }, 60_000);
    assert.deepEqual((await other.listSessions("r"))[0]?.presence, presence);
  });

  test("session entries are listed until deleted or expired", async ({ store, other }) => {
    const now = Date.now();
    await store.putSession("r", {
      sessionId: "s1",
      isolateId: "i1",
      lastSeen: now,
      expiresAt: now + 60_000,
    }, 60_000);
    await store.putSession("r", {
      sessionId: "s2",
      isolateId: "i1",
      lastSeen: now,
      expiresAt: now - 1,
    }, 60_000);
    assert.deepEqual((await other.listSessions("r")).map((s) => s.sessionId), ["s1"]);
    await other.deleteSession("r", "s1");
    assert.deepEqual(await store.listSessions("r"), []);
  });

  test("commitSteps commits several clocks at once, one log step each, all or nothing", async ({ store, other }) => {
    await store.create("r", emptyRoom());
    const a1 = shape("shape:a", { v: 1 });
    const a2 = shape("shape:a", { v: 2 });
    const b = shape("shape:b");
    // Big enough to be chunked by the KV store, then replaced in the same group.
    const big1 = shape("shape:big", { text: "x".repeat(40_000) });
    const big2 = shape("shape:big", { text: "y".repeat(40_000) });
    assert.deepEqual(
      await store.commitSteps("r", 0, [
        { puts: [{ record: a1 }, { record: big1 }], deletes: [] },
        {
          puts: [{ record: a2, prev: { state: a1, lastChangedClock: 1 } }, { record: b }],
          deletes: [],
        },
        {
          puts: [{ record: big2, prev: { state: big1, lastChangedClock: 1 } }],
          deletes: [{ id: "shape:b", prev: { state: b, lastChangedClock: 2 } }],
        },
      ]),
      { ok: true, clock: 3 },
    );
    assert.equal(await other.readClock("r"), 3);
    const loaded = (await other.load("r"))!;
    assert.equal(loaded.meta.documentClock, 3);
    assert.deepEqual(byId(loaded.records), {
      "shape:a": { state: a2, lastChangedClock: 2 },
      "shape:big": { state: big2, lastChangedClock: 3 },
    });
    assert.deepEqual([...loaded.tombstones], [["shape:b", 3]]);
    const steps = await other.stepsSince("r", 0);
    assert.equal(steps.kind, "steps");
    if (steps.kind !== "steps") return;
    assertStepsOf(steps.steps, [
      { clock: 1, puts: [a1, big1], deletes: [] },
      { clock: 2, puts: [a2, b], deletes: [] },
      { clock: 3, puts: [big2], deletes: ["shape:b"] },
    ]);
    assert.deepEqual(steps.steps[2]!.deletes, ["shape:b"]);
    assert.deepEqual(steps.steps[2]!.puts.map((p) => p.state.id), ["shape:big"]);
    assert.deepEqual(byId(steps.steps[1]!.puts)["shape:a"]?.state, a2);
    // A stale group is a conflict and writes nothing.
    const lost = await store.commitSteps("r", 2, [
      { puts: [{ record: shape("shape:c") }], deletes: [] },
      { puts: [{ record: shape("shape:d") }], deletes: [] },
    ]);
    assert.deepEqual(lost, { ok: false, error: "conflict" });
    assert.equal(await other.readClock("r"), 3);
    assert.equal((await other.load("r"))!.records.length, 2);
  });

  test("commitSteps commits a prefix of a big group; the caller commits the rest after it", async ({ store, other }) => {
    await store.create("r", emptyRoom());
    // Thirty steps of 40 KB each: more than one KV atomic operation holds.
    const steps = Array.from({ length: 30 }, (_, i) => ({
      puts: [{ record: shape(`shape:${i}`, { text: String(i % 10).repeat(40_000) }) }],
      deletes: [],
    }));
    let clock = 0;
    let calls = 0;
    while (clock < steps.length) {
      const result = await store.commitSteps("r", clock, steps.slice(clock));
      assert.ok(result.ok);
      if (!result.ok) return;
      assert.ok(result.clock > clock, "at least one step per call");
      clock = result.clock;
      calls++;
    }
    assert.ok(calls < steps.length, `${calls} calls`);
    // The log keeps the last clocks (logSize 5 here), one step each, in order.
    const read = await other.stepsSince("r", 25);
    assert.equal(read.kind, "steps");
    if (read.kind !== "steps") return;
    assert.deepEqual(
      read.steps.map((step) => [step.clock, step.puts[0]?.state.id]),
      [26, 27, 28, 29, 30].map((clock) => [clock, `shape:${clock - 1}`]),
    );
    const loaded = await other.load("r");
    assert.deepEqual(
      byId(loaded!.records)["shape:7"],
      { state: steps[7]!.puts[0]!.record, lastChangedClock: 8 },
    );
    assert.equal(loaded?.records.length, 30);
  });

  test("the writer and a step's origin: kept by commits, read back by loads and stepsSince", async ({ store, other }) => {
    await store.create("r", emptyRoom());
    const before = Date.now();
    await commit(store, "r", 0, {
      puts: [{ record: shape("shape:a") }],
      deletes: [],
      writer: "i1",
    });
    // A commit that names no writer keeps the one before.
    await commit(other, "r", 1, { puts: [{ record: shape("shape:b") }], deletes: [] });
    const loaded = await other.load("r");
    assert.equal(loaded?.meta.writer?.isolateId, "i1");
    assert.ok(loaded!.meta.writer!.at >= before && loaded!.meta.writer!.at <= Date.now());
    // Forwarded pushes keep their origin, alone and in a group; the last named writer wins.
    assert.ok(
      (await other.commitSteps("r", 2, [
        { puts: [{ record: shape("shape:c") }], deletes: [], origin: "i1:7", writer: "i2" },
        { puts: [{ record: shape("shape:d") }], deletes: [], writer: "i2" },
      ])).ok,
    );
    assert.ok(
      (await commit(other, "r", 4, {
        puts: [{ record: shape("shape:e") }],
        deletes: [],
        origin: "i1:8",
        writer: "i2",
      })).ok,
    );
    const steps = await store.stepsSince("r", 0);
    assert.equal(steps.kind, "steps");
    if (steps.kind !== "steps") return;
    assert.deepEqual(steps.steps.map((step) => step.origin), [
      undefined,
      undefined,
      "i1:7",
      undefined,
      "i1:8",
    ]);
    assert.equal(steps.writer?.isolateId, "i2");
    assert.equal((await store.load("r"))?.meta.writer?.isolateId, "i2");
  });

  test("deleteRoom removes the document, its log and its sessions; other rooms stay", async ({ store, other }) => {
    await store.create("r", emptyRoom());
    await store.create("r2", emptyRoom([{ state: shape("shape:keep"), lastChangedClock: 0 }]));
    // Big enough to be chunked by the KV store.
    const big = shape("shape:big", { text: "x".repeat(150_000) });
    await commit(store, "r", 0, {
      puts: [{ record: big }, { record: shape("shape:a") }],
      deletes: [],
    });
    await commit(store, "r", 1, {
      puts: [],
      deletes: [{ id: "shape:a", prev: { state: shape("shape:a"), lastChangedClock: 1 } }],
    });
    const now = Date.now();
    await store.putSession("r", {
      sessionId: "s",
      isolateId: "i",
      lastSeen: now,
      expiresAt: now + 60_000,
    }, 60_000);
    await other.deleteRoom("r");
    assert.equal(await store.load("r"), null);
    assert.equal(await store.readClock("r"), -1);
    assert.deepEqual(await store.listSessions("r"), []);
    assert.deepEqual((await store.load("r2"))?.records.map((r) => r.state.id), ["shape:keep"]);
    await store.deleteRoom("r"); // idempotent
    // The id can be used again from scratch.
    assert.equal(await store.create("r", emptyRoom()), true);
    assert.deepEqual((await store.load("r"))?.records, []);
  });
}

Deno.test("KvRoomStore: deleteRoom leaves no key of the room behind", async () => {
  await using kv = await Deno.openKv(":memory:");
  const store = new KvRoomStore(kv, { logSize: 5 });
  await store.create("r", emptyRoom());
  await store.create("r-other", emptyRoom());
  for (let clock = 0; clock < 8; clock++) {
    await commit(store, "r", clock, {
      puts: [{ record: shape(`shape:${clock}`, { text: "y".repeat(70_000) }) }],
      deletes: [],
    });
  }
  await store.deleteRoom("r");
  const left: Deno.KvKey[] = [];
  for await (const entry of kv.list({ prefix: ["tldraw", "r"] })) left.push(entry.key);
  assert.deepEqual(left, []);
  let others = 0;
  for await (const _ of kv.list({ prefix: ["tldraw", "r-other"] })) others++;
  assert.ok(others > 0);
});

Deno.test("KvRoomStore: the schema has its own key, written only when it changes; commits write two clocks", async () => {
  await using kv = await Deno.openKv(":memory:");
  const store = new KvRoomStore(kv, { logTail: false });
  await store.create("r", emptyRoom());
  const schemaKey = ["tldraw", "r", "schema"];
  const created = await kv.get(schemaKey);
  assert.deepEqual(created.value, { schemaVersion: 2 });
  await commit(store, "r", 0, { puts: [{ record: shape("shape:a") }], deletes: [] });
  assert.deepEqual(
    (await kv.get(["tldraw", "r", "meta"])).value,
    { documentClock: 1, tombstoneHistoryStartsAtClock: 0 },
  );
  assert.equal(
    (await kv.get(schemaKey)).versionstamp,
    created.versionstamp,
    "schema not rewritten",
  );
  const next = { schemaVersion: 2, sequences: { "com.tldraw.shape": 3 } };
  await store.commitSteps("r", 1, [
    { puts: [{ record: shape("shape:b") }], deletes: [] },
    {
      puts: [],
      deletes: [{ id: "shape:a", prev: { state: shape("shape:a"), lastChangedClock: 1 } }],
      schema: next,
    },
  ]);
  assert.deepEqual((await kv.get(schemaKey)).value, next);
  assert.deepEqual((await new KvRoomStore(kv).load("r"))?.meta.schema, next);
});

Deno.test("KvRoomStore: a room stored with its schema inside the meta loads, and the next commit moves it out", async () => {
  await using kv = await Deno.openKv(":memory:");
  const store = new KvRoomStore(kv);
  const legacy = { schemaVersion: 2, sequences: { "com.tldraw.page": 1 } };
  await kv.set(["tldraw", "r", "meta"], {
    documentClock: 0,
    tombstoneHistoryStartsAtClock: 0,
    schema: legacy,
  });
  assert.deepEqual((await store.load("r"))?.meta.schema, legacy);
  const result = await commit(store, "r", 0, { puts: [{ record: shape("shape:a") }], deletes: [] });
  assert.deepEqual(result, { ok: true, clock: 1 });
  assert.equal(
    ((await kv.get(["tldraw", "r", "meta"])).value as { schema?: unknown }).schema,
    undefined,
  );
  const loaded = await new KvRoomStore(kv).load("r");
  assert.deepEqual(loaded?.meta.schema, legacy);
  assert.deepEqual(loaded?.records.map((r) => r.state.id), ["shape:a"]);
});

Deno.test("KvRoomStore: a staged commit interrupted after its meta write is finished by the next reader", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    // The committing isolate "dies" when it starts applying the staged mutations (it lists them).
    const crashing = new Proxy(kv, {
      get(target, property) {
        if (property === "list") {
          return (selector: Deno.KvListSelector, options?: Deno.KvListOptions) => {
            if ("prefix" in selector && selector.prefix.includes("stage")) {
              throw new Error("isolate killed");
            }
            return target.list(selector, options);
          };
        }
        const value = Reflect.get(target, property);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const dying = new KvRoomStore(crashing);
    await dying.create("r", emptyRoom());
    const puts = Array.from({ length: 2_000 }, (_, i) => ({
      record: shape(`shape:${i}`, { text: "w".repeat(1_000) }),
    }));
    await assert.rejects(commit(dying, "r", 0, { puts, deletes: [] }), /isolate killed/);
    // The meta (clock 1) was committed before the crash: the change is durable and any reader
    // rolls it forward before answering.
    const survivor = new KvRoomStore(kv);
    const data = await survivor.load("r");
    assert.equal(data?.meta.documentClock, 1);
    assert.equal(data?.records.length, 2_000);
    assert.equal(await survivor.readClock("r"), 1);
    assert.deepEqual(
      await commit(survivor, "r", 1, { puts: [{ record: shape("shape:next") }], deletes: [] }),
      { ok: true, clock: 2 },
    );
    let staged = 0;
    for await (const _ of kv.list({ prefix: ["tldraw", "r", "stage"] })) staged++;
    assert.equal(staged, 0);
  } finally {
    kv.close();
  }
});

Deno.test("KvRoomStore: a step logged without values holds only what that clock still has", async () => {
  await using kv = await Deno.openKv(":memory:");
  const store = new KvRoomStore(kv);
  await store.create("r", emptyRoom());
  // Too big to be logged with its value: readers get the record's current state instead.
  const v1 = shape("shape:big", { text: "a".repeat(60_000) });
  const v2 = shape("shape:big", { text: "b".repeat(60_000) });
  await commit(store, "r", 0, { puts: [{ record: v1 }], deletes: [] });
  await commit(store, "r", 1, {
    puts: [{ record: v2, prev: { state: v1, lastChangedClock: 1 } }],
    deletes: [],
  });
  const steps = await store.stepsSince("r", 0);
  assert.equal(steps.kind, "steps");
  if (steps.kind !== "steps") return;
  // Clock 1's version is gone: step 1 is empty and step 2 brings the current value.
  assert.deepEqual(steps.steps.map((s) => [s.clock, s.puts.length]), [[1, 0], [2, 1]]);
  assert.equal(steps.steps[1]!.puts[0]!.state.text, v2.text);
});

Deno.test("KvRoomStore: the log lists ids only and readers of a step read its records; values in entries written before are read", async () => {
  await using kv = await Deno.openKv(":memory:");
  const store = new KvRoomStore(kv, { logTail: false });
  await store.create("r", emptyRoom());
  const a = shape("shape:a", { x: 1 });
  const b = shape("shape:b", { x: 2 });
  await commit(store, "r", 0, { puts: [{ record: a }], deletes: [] });
  await commit(store, "r", 1, { puts: [{ record: b }], deletes: [] });
  type Slot = { f: number; c: number; s: { p: string[]; d: string[]; j?: string[] }[] };
  for (const clock of [1, 2]) {
    const slot = (await kv.get<Slot>(["tldraw", "r", "ring", clock])).value;
    assert.equal(slot?.s.length, 1);
    assert.equal(slot?.s[0]?.j, undefined, "ids only");
  }
  const read = async () => {
    const steps = await new KvRoomStore(kv).stepsSince("r", 0);
    assert.equal(steps.kind, "steps");
    return steps.kind === "steps"
      ? steps.steps.map((s) => [s.clock, s.puts.map((p) => p.state)])
      : [];
  };
  assert.deepEqual(await read(), [[1, [a]], [2, [b]]]);
  // An entry written with the values (as before): the reader takes them from the log.
  const logged = shape("shape:b", { x: 5 });
  await kv.set(["tldraw", "r", "ring", 2], {
    f: 2,
    c: 2,
    s: [{ p: ["shape:b"], d: [], j: [JSON.stringify(logged)] }],
  });
  assert.deepEqual(await read(), [[1, [a]], [2, [logged]]]);
});

Deno.test("KvRoomStore: a catch-up over many steps of one record reads its head once", async () => {
  await using kv = await Deno.openKv(":memory:");
  const store = new KvRoomStore(kv);
  await store.create("r", emptyRoom());
  for (let clock = 0; clock < 20; clock++) {
    const record = shape("shape:a", { x: clock });
    assert.ok((await commit(store, "r", clock, { puts: [{ record }], deletes: [] })).ok);
  }
  let reads = 0;
  const counted = withKvMethods(
    kv,
    new Map([["getMany", (keys: Deno.KvKey[]) => {
      reads++;
      return kv.getMany(keys);
    }]]),
  );
  const steps = await new KvRoomStore(counted).stepsSince("r", 0);
  assert.equal(steps.kind, "steps");
  if (steps.kind !== "steps") return;
  assert.equal(steps.steps.length, 20);
  assert.deepEqual(steps.steps.at(-1)!.puts.map((p) => p.state.x), [19]);
  assert.equal(reads, 1);
});

Deno.test("KvRoomStore: the change log is a ring of logSize slots, a commit's clocks in one; reads across its wrap are in order", async () => {
  await using kv = await Deno.openKv(":memory:");
  const store = new KvRoomStore(kv, { logSize: 4, logTail: false });
  await store.create("r", emptyRoom());
  for (let clock = 0; clock < 10; clock++) {
    const record = shape(`shape:${clock % 3}`, { x: clock });
    assert.ok((await commit(store, "r", clock, { puts: [{ record }], deletes: [] })).ok);
  }
  const slots: Deno.KvKey[] = [];
  for await (const entry of kv.list({ prefix: ["tldraw", "r", "ring"] })) slots.push(entry.key);
  assert.deepEqual(slots.map((key) => key.at(-1)), [0, 1, 2, 3], "one key per slot, reused");
  // Clocks 7–10 sit in slots 3, 0, 1, 2.
  const steps = await store.stepsSince("r", 6);
  assert.equal(steps.kind, "steps");
  if (steps.kind !== "steps") return;
  // Clock 7 wrote shape:0, which clock 10 changed again: its step leaves it to that one.
  assert.deepEqual(
    steps.steps.map((step) => [step.clock, step.puts[0]?.state.x]),
    [[7, undefined], [8, 7], [9, 8], [10, 9]],
  );
  // Clock 6's slot holds clock 10 now: from 5 on the log no longer reaches.
  assert.equal((await store.stepsSince("r", 5)).kind, "gap");
  // A group's clocks share one slot (its last clock's): five steps, one log key written.
  const before = new Map<number, string | null>();
  for await (const entry of kv.list({ prefix: ["tldraw", "r", "ring"] })) {
    before.set(entry.key.at(-1) as number, entry.versionstamp);
  }
  const group = Array.from({ length: 5 }, (_, i) => ({
    puts: [{ record: shape(`shape:g${i}`, { x: i }) }],
    deletes: [],
  }));
  assert.deepEqual(await store.commitSteps("r", 10, group), { ok: true, clock: 15 });
  const written: number[] = [];
  for await (const entry of kv.list({ prefix: ["tldraw", "r", "ring"] })) {
    if (before.get(entry.key.at(-1) as number) !== entry.versionstamp) {
      written.push(entry.key.at(-1) as number);
    }
  }
  assert.deepEqual(written, [15 % 4]);
  for (const since of [11, 13]) {
    const read = await store.stepsSince("r", since);
    assert.equal(read.kind, "steps", `since ${since}`);
    if (read.kind !== "steps") return;
    assert.deepEqual(
      read.steps.map((step) => [step.clock, step.puts[0]?.state.id]),
      Array.from({ length: 15 - since }, (_, i) => [since + 1 + i, `shape:g${since - 10 + i}`]),
    );
  }
  // Its slot overwritten by a later lap: the group's clocks are gone from the log.
  for (let clock = 15; clock < 19; clock++) {
    const record = shape("shape:late", { x: clock });
    assert.ok((await commit(store, "r", clock, { puts: [{ record }], deletes: [] })).ok);
  }
  assert.equal((await store.stepsSince("r", 14)).kind, "gap");
  assert.equal((await store.stepsSince("r", 15)).kind, "steps");
});

/** `kv` recording the prefix (or start) of every listing, as `a/b/c`. */
function listingKv(kv: Deno.Kv): { kv: Deno.Kv; listed: string[] } {
  const listed: string[] = [];
  const list = (selector: Deno.KvListSelector, options?: Deno.KvListOptions) => {
    const key = "prefix" in selector ? selector.prefix : selector.start;
    listed.push(key.join("/"));
    return kv.list(selector, options);
  };
  return { kv: withKvMethods(kv, new Map([["list", list]])), listed };
}

Deno.test("KvRoomStore: the newest log entries stay in the meta until they outgrow it, then go to the ring in one slot; every reader sees them", async () => {
  await using kv = await Deno.openKv(":memory:");
  const store = new KvRoomStore(kv);
  await store.create("r", emptyRoom());
  const ringKeys =
    async () => (await Array.fromAsync(kv.list({ prefix: ["tldraw", "r", "ring"] })));
  type Meta = { documentClock: number; t?: { f: number; c: number; s: unknown[] } };
  const move = (clock: number) => ({
    puts: [{ record: shape("shape:a", { x: clock }) }],
    deletes: [],
  });
  let clock = 0;
  while ((await ringKeys()).length === 0) {
    assert.ok(clock < 40, "the ring is never written");
    assert.ok((await commit(store, "r", clock, move(clock))).ok);
    clock++;
    const meta = (await kv.get<Meta>(["tldraw", "r", "meta"])).value!;
    if ((await ringKeys()).length === 0) {
      assert.deepEqual([meta.t?.f, meta.t?.c, meta.t?.s.length], [1, clock, clock], "in the tail");
    } else assert.equal(meta.t, undefined, "the tail went to the ring");
  }
  assert.ok(clock > 2, `the tail held only ${clock - 1} entries`);
  const [slot] = await ringKeys();
  assert.deepEqual(slot!.key.at(-1), clock);
  assert.deepEqual(
    (slot!.value as Meta["t"])!.f,
    1,
    "the tail's entries and the commit's, one slot",
  );
  // Two more: in the tail again.
  for (const _ of [1, 2]) assert.ok((await commit(store, "r", clock, move(clock++))).ok);
  assert.equal((await ringKeys()).length, 1);

  // Another isolate reads every step, from the ring and the tail; the newest from the tail alone.
  const listing = listingKv(kv);
  const other = new KvRoomStore(listing.kv);
  for (const since of [0, 1, clock - 3, clock - 1]) {
    const steps = await other.stepsSince("r", since);
    assert.equal(steps.kind, "steps", `since ${since}`);
    if (steps.kind !== "steps") return;
    assert.deepEqual(
      steps.steps.map((s) => [s.clock, s.puts.length]),
      Array.from(
        { length: clock - since },
        (_, i) => [since + 1 + i, i === clock - since - 1 ? 1 : 0],
      ),
      `since ${since}: every clock, the record only at its last change`,
    );
  }
  listing.listed.length = 0;
  await other.stepsSince("r", clock - 1);
  assert.ok(!listing.listed.some((key) => key.includes("ring")), "the tail alone: no ring read");

  // A snapshot, then commits into the tail: loading from the snapshot applies them.
  await store.saveSnapshot("r", clock, [{
    state: shape("shape:a", { x: clock - 1 }),
    lastChangedClock: clock,
  }]);
  const create = (id: string) => ({ puts: [{ record: shape(id) }], deletes: [] });
  assert.ok((await commit(store, "r", clock, create("shape:b"))).ok);
  assert.ok((await commit(store, "r", clock + 1, create("shape:c"))).ok);
  listing.listed.length = 0;
  const loaded = await new KvRoomStore(listing.kv).load("r");
  assert.deepEqual(loaded?.records.map((r) => r.state.id).sort(), [
    "shape:a",
    "shape:b",
    "shape:c",
  ]);
  assert.ok(!listing.listed.some((key) => key.endsWith("/rec")), "loaded from the snapshot");
});

Deno.test("KvRoomStore: the tail holds as many entries whether its size is remembered or read back", async () => {
  // Commits until the tail goes to the ring: through one store (which remembers the size of the
  // tail it wrote) or through a new store each time (which measures the tail it reads).
  const entriesBeforeRing = async (freshStoreEachCommit: boolean) => {
    await using kv = await Deno.openKv(":memory:");
    let store = new KvRoomStore(kv);
    await store.create("r", emptyRoom());
    const id = (i: number) => `shape:${"x".repeat(i % 7)}${i}`;
    for (let clock = 0; clock < 60; clock++) {
      if (freshStoreEachCommit) store = new KvRoomStore(kv);
      const changes = { puts: [{ record: shape(id(clock)) }], deletes: [] };
      assert.ok((await commit(store, "r", clock, changes)).ok);
      const ring = await Array.fromAsync(kv.list({ prefix: ["tldraw", "r", "ring"] }));
      if (ring.length > 0) return clock;
    }
    throw new Error("the ring is never written");
  };
  const remembered = await entriesBeforeRing(false);
  assert.ok(remembered > 3, `the tail held only ${remembered} entries`);
  assert.equal(remembered, await entriesBeforeRing(true));
});

Deno.test("KvRoomStore: a new record marked noTombstone deletes no tombstone key; a re-created one does", async () => {
  await using kv = await Deno.openKv(":memory:");
  const tombDeletes: string[] = [];
  const atomic = () => {
    const op = kv.atomic();
    const del = op.delete.bind(op);
    op.delete = (key) => {
      if (key.at(-2) === "tomb") tombDeletes.push(String(key.at(-1)));
      return del(key);
    };
    return op;
  };
  const store = new KvRoomStore(withKvMethods(kv, new Map([["atomic", atomic]])));
  await store.create("r", emptyRoom());
  const a = shape("shape:a");
  await commit(store, "r", 0, { puts: [{ record: a, noTombstone: true }], deletes: [] });
  assert.deepEqual(tombDeletes, []);
  const prev = { state: a, lastChangedClock: 1 };
  await commit(store, "r", 1, { puts: [], deletes: [{ id: "shape:a", prev }] });
  assert.equal((await kv.get(["tldraw", "r", "tomb", "shape:a"])).value, 2);
  await commit(store, "r", 2, { puts: [{ record: a }], deletes: [] });
  assert.deepEqual(tombDeletes, ["shape:a"]);
  assert.equal((await kv.get(["tldraw", "r", "tomb", "shape:a"])).value, null);
});

Deno.test("KvRoomStore: a group larger than one atomic operation is committed as its longest prefix that fits", async () => {
  await using kv = await Deno.openKv(":memory:");
  const store = new KvRoomStore(kv);
  await store.create("r", emptyRoom());
  const steps = Array.from({ length: 30 }, (_, i) => ({
    puts: [{ record: shape(`shape:${i}`, { text: "p".repeat(40_000) }) }],
    deletes: [],
  }));
  const first = await store.commitSteps("r", 0, steps);
  assert.ok(first.ok);
  if (!first.ok) return;
  // About 780 KB fit one operation (each step writes its record and logs its value): more than
  // one step, fewer than all.
  assert.ok(first.clock > 1 && first.clock < 30, `committed ${first.clock}`);
  assert.equal(await store.readClock("r"), first.clock);
  const ids = (await store.load("r"))!.records.map((r) => r.state.id).sort();
  assert.deepEqual(ids, steps.slice(0, first.clock).map((s) => s.puts[0]!.record.id).sort());
});

Deno.test("KvRoomStore: what cannot be stored at all is a typed error", async () => {
  await using kv = await Deno.openKv(":memory:");
  const store = new KvRoomStore(kv);
  const records = Array.from({ length: 1_000 }, (_, i) => ({
    state: shape(`shape:${i}`),
    lastChangedClock: 0,
  }));
  await assert.rejects(
    store.create("r", emptyRoom(records)),
    (error) => error instanceof RoomStoreError && error.failure === StoreFailure.too_large,
  );
  assert.equal(await store.load("r"), null);
});

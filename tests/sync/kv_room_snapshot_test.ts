/**
 * KvRoomStore's compacted snapshots: a load from a snapshot plus the change log after it gives the
 * same room as listing every record, whatever happened after the snapshot (updates, deletes,
 * re-creates, big records, a log that no longer reaches back, a pruned tombstone history).
 */
import assert from "node:assert/strict";
import { KvRoomStore } from "../../sync/tldraw/kv_room_store.ts";
import type { WireRecord } from "../../sync/tldraw/protocol.ts";
import type { RoomData, StoredRecord } from "../../sync/tldraw/room_store.ts";
import { LazyRecord, recordJson } from "../../sync/tldraw/record_json.ts";

const LOG_SIZE = 20;

const shape = (id: string, extra: Record<string, unknown> = {}): WireRecord => ({
  id,
  typeName: "shape",
  ...extra,
});

/** A room as comparable data: records by id (state and clock), tombstones, clocks. */
function normal(data: RoomData | null) {
  assert.ok(data);
  const records = Object.fromEntries(
    data.records.map((r) => [r.state.id, { state: r.state, clock: r.lastChangedClock }]),
  );
  return {
    clock: data.meta.documentClock,
    startsAt: data.meta.tombstoneHistoryStartsAtClock,
    records,
    tombstones: Object.fromEntries(data.tombstones),
  };
}

/** The document as the store holds it now, read record by record (no snapshot). */
async function listed(kv: Deno.Kv) {
  return normal(await new KvRoomStore(kv, { logSize: LOG_SIZE, snapshots: false }).load("r"));
}

async function snapshotKeys(kv: Deno.Kv): Promise<string[]> {
  const keys: string[] = [];
  for await (const entry of kv.list({ prefix: ["tldraw", "r"] })) {
    if (String(entry.key[2]).startsWith("snap")) keys.push(entry.key.slice(2).join("/"));
  }
  return keys;
}

/** Seeded pseudo-random steps: puts (new and updated, some big), deletes, re-creates. */
async function churn(store: KvRoomStore, from: number, steps: number, seed: number) {
  let state = seed;
  const random = () => (state = (state * 1103515245 + 12345) % 2147483648) / 2147483648;
  let clock = from;
  for (let i = 0; i < steps; i++) {
    const data = (await store.load("r"))!;
    const live = new Map(data.records.map((r) => [r.state.id, r]));
    const id = `shape:${Math.floor(random() * 30)}`;
    const prev = live.get(id);
    const change = prev && random() < 0.3 ? { puts: [], deletes: [{ id, prev }] } : {
      puts: [{
        record: shape(id, {
          x: clock,
          text: random() < 0.1 ? (random() < 0.5 ? "é" : "€").repeat(40_000) : "t",
        }),
        prev,
      }],
      deletes: [],
    };
    const result = await store.commitSteps("r", clock, [change]);
    assert.ok(result.ok);
    clock = result.clock;
  }
  return clock;
}

/**
 * Whether a load uses the snapshot: a record's stored entry is changed behind the store's back (no
 * clock step), which only a listing sees; the entry is put back afterwards.
 */
async function loadsFromSnapshot(kv: Deno.Kv): Promise<boolean> {
  const key = ["tldraw", "r", "rec", "shape:seed0"];
  const original = await kv.get(key);
  await kv.set(key, { c: 0, j: JSON.stringify(shape("shape:seed0", { i: "behind its back" })) });
  try {
    const data = await new KvRoomStore(kv, { logSize: LOG_SIZE }).load("r");
    return data!.records.find((r) => r.state.id === "shape:seed0")!.state.i === 0;
  } finally {
    await kv.set(key, original.value);
  }
}

async function seeded(kv: Deno.Kv): Promise<{ store: KvRoomStore; clock: number }> {
  const store = new KvRoomStore(kv, { logSize: LOG_SIZE });
  const records: StoredRecord[] = Array.from({ length: 150 }, (_, i) => ({
    state: shape(`shape:seed${i}`, { i }),
    lastChangedClock: 0,
  }));
  await store.create("r", {
    meta: { documentClock: 0, tombstoneHistoryStartsAtClock: 0, schema: { schemaVersion: 2 } },
    records,
    tombstones: new Map(),
  });
  return { store, clock: await churn(store, 0, 15, 1) };
}

Deno.test("KvRoomStore snapshot: a load right after it comes from the snapshot and equals the listing", async () => {
  await using kv = await Deno.openKv(":memory:");
  const { store, clock } = await seeded(kv);
  const data = (await store.load("r"))!;
  assert.equal(await store.saveSnapshot("r", clock, data.records), true);
  const keys = await snapshotKeys(kv);
  assert.ok(keys.includes("snap") && keys.some((k) => k.startsWith("snapchunk/")), keys.join());
  assert.equal(await loadsFromSnapshot(kv), true);
  assert.deepEqual(
    normal(await new KvRoomStore(kv, { logSize: LOG_SIZE }).load("r")),
    await listed(kv),
  );
  // An older snapshot never replaces a newer one.
  assert.equal(await store.saveSnapshot("r", clock - 1, data.records), false);
  assert.deepEqual(await snapshotKeys(kv), keys);
});

Deno.test("KvRoomStore snapshot: commits after it (updates, deletes, re-creates, big records) are applied from the log", async () => {
  await using kv = await Deno.openKv(":memory:");
  const { store, clock } = await seeded(kv);
  await store.saveSnapshot("r", clock, (await store.load("r"))!.records);
  for (const [steps, seed] of [[1, 7], [5, 8], [LOG_SIZE - 8, 9]]) {
    await churn(store, await store.readClock("r"), steps!, seed!);
    assert.equal(await loadsFromSnapshot(kv), true);
    const fresh = new KvRoomStore(kv, { logSize: LOG_SIZE });
    assert.deepEqual(normal(await fresh.load("r")), await listed(kv), `after ${steps} more`);
  }
});

Deno.test("KvRoomStore snapshot: when the log no longer reaches it, or tombstones were pruned past it, the room is listed", async () => {
  await using kv = await Deno.openKv(":memory:");
  const { store, clock } = await seeded(kv);
  await store.saveSnapshot("r", clock, (await store.load("r"))!.records);
  let now = await churn(store, clock, LOG_SIZE + 3, 11);
  assert.equal(await loadsFromSnapshot(kv), false);
  assert.deepEqual(
    normal(await new KvRoomStore(kv, { logSize: LOG_SIZE }).load("r")),
    await listed(kv),
  );
  // A newer snapshot, then the tombstone history cut past it.
  await store.saveSnapshot("r", now, (await store.load("r"))!.records);
  now = await churn(store, now, 3, 12);
  assert.equal(await loadsFromSnapshot(kv), true);
  assert.equal(await store.pruneTombstones("r", now, now), true);
  assert.equal(await loadsFromSnapshot(kv), false);
  assert.deepEqual(
    normal(await new KvRoomStore(kv, { logSize: LOG_SIZE }).load("r")),
    await listed(kv),
  );
});

Deno.test("KvRoomStore snapshot: replacing one deletes the old pieces; deleteRoom removes them all", async () => {
  await using kv = await Deno.openKv(":memory:");
  const { store, clock } = await seeded(kv);
  await store.saveSnapshot("r", clock, (await store.load("r"))!.records);
  const first = await snapshotKeys(kv);
  const now = await churn(store, clock, 2, 13);
  await store.saveSnapshot("r", now, (await store.load("r"))!.records);
  const second = await snapshotKeys(kv);
  assert.equal(
    second.filter((k) => first.includes(k) && k !== "snap").length,
    0,
    "old pieces gone",
  );
  await store.deleteRoom("r");
  assert.deepEqual(await snapshotKeys(kv), []);
});

Deno.test("KvRoomStore loads hand out records unparsed: their stored JSON, parsed on first use", async () => {
  await using kv = await Deno.openKv(":memory:");
  const { store, clock } = await seeded(kv);
  // Ids that need escaping survive the snapshot's line format.
  const odd = shape('shape:tab\there "quoted"\n', { i: -1 });
  assert.ok((await store.commitSteps("r", clock, [{ puts: [{ record: odd }], deletes: [] }])).ok);
  await store.saveSnapshot("r", clock + 1, (await store.load("r"))!.records);
  for (const snapshots of [true, false]) {
    const data = (await new KvRoomStore(kv, { logSize: LOG_SIZE, snapshots }).load("r"))!;
    const lazy = data.records.filter((r) => r instanceof LazyRecord) as LazyRecord[];
    assert.equal(lazy.length, data.records.length, `snapshots: ${snapshots}`);
    const record = lazy.find((r) => r.id === odd.id);
    assert.ok(record, `snapshots: ${snapshots}`);
    assert.equal(record.json, JSON.stringify(odd));
    assert.equal(record.chars, record.json.length);
    assert.deepEqual(record.state, odd);
    // Parsed once: the same object on every use, and its JSON is known without serializing it.
    assert.equal(record.state, record.state);
    assert.equal(recordJson(record.state), record.json);
  }
});

Deno.test("KvRoomStore snapshot: pieces written in the earlier line format (clock, JSON) still load", async () => {
  await using kv = await Deno.openKv(":memory:");
  const { store, clock } = await seeded(kv);
  const records = (await store.load("r"))!.records;
  const text = records.map((r) => `${r.lastChangedClock}\t${JSON.stringify(r.state)}\n`).join("");
  await kv.set(["tldraw", "r", "snapchunk", "old", 0], text);
  await kv.set(["tldraw", "r", "snap"], { id: "old", clock, pieces: 1 });
  assert.equal(await loadsFromSnapshot(kv), true);
  assert.deepEqual(
    normal(await new KvRoomStore(kv, { logSize: LOG_SIZE }).load("r")),
    await listed(kv),
  );
});

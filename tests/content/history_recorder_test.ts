/**
 * The history recorder's throttle against a slow database: a write in progress must not make the
 * commits behind it start the next write at once (with a big room, each write is slow, and they
 * used to run back to back for as long as the room changed).
 */
import assert from "node:assert/strict";
import { HistoryRecorder, HistoryStore } from "../../sync/content/history.ts";
import { serverSchema } from "../../sync/content/document.ts";
import { MemoryRoomStore } from "../../sync/tldraw/memory_room_store.ts";
import type { RoomStore } from "../../sync/tldraw/room_store.ts";
import { LazyRecord } from "../../sync/tldraw/record_json.ts";
import { createLogger } from "../../log.ts";
import { openTestDatabase, TEST_ENGINE } from "../helpers/db.ts";
import { withOverrides } from "../helpers/overrides.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// @tldraw/utils schedules a 100 ms timer when first imported; let it fire before the test starts.
await sleep(150);

/** A recorder writing to `history`, reading rooms that are not loaded from `store`. */
function recorderFor(
  history: HistoryStore,
  intervalMs: number,
  store: RoomStore = new MemoryRoomStore(),
) {
  return new HistoryRecorder({ history, store, log: createLogger("error"), intervalMs });
}

/** The real store, each write held up as a big document on a busy database would be. */
class SlowHistoryStore extends HistoryStore {
  writes = 0;
  override async addBatch(...args: Parameters<HistoryStore["addBatch"]>) {
    this.writes += args[0].length;
    await sleep(150);
    return await super.addBatch(...args);
  }
}

/** The real store, counting the statements that store versions. */
class CountingHistoryStore extends HistoryStore {
  batches: number[] = [];
  override addBatch(...args: Parameters<HistoryStore["addBatch"]>) {
    this.batches.push(args[0].length);
    return super.addBatch(...args);
  }
}

Deno.test(`[${TEST_ENGINE}] history recorder: slow writes do not start the next one early`, async () => {
  await using database = await openTestDatabase();
  const history = new SlowHistoryStore(database);
  const recorder = recorderFor(history, 1_000);
  let clock = 0;
  recorder.readLoadedRooms(() => ({ clock, schema: serverSchema(), records: [] }));
  // 1.5 s of commits, one every 10 ms.
  const started = Date.now();
  while (Date.now() - started < 1_500) {
    recorder.onDocumentChanged("r1", ++clock);
    await sleep(10);
  }
  await recorder.flush();
  // One version at the first change, one a second later, one for the rest at flush: not one per
  // write's duration.
  assert.ok(history.writes <= 3, `writes: ${history.writes}`);
  const versions = await history.list("r1");
  assert.equal(versions.length, history.writes);
  assert.equal(Math.max(...versions.map((v) => v.clock)), clock, "the last change is kept");
});

Deno.test(`[${TEST_ENGINE}] history recorder: the last leave copies the room while it is loaded`, async () => {
  await using database = await openTestDatabase();
  const history = new HistoryStore(database);
  let loads = 0;
  const store = new MemoryRoomStore();
  const counting = withOverrides(store, {
    load: (roomId) => {
      loads++;
      return store.load(roomId);
    },
  });
  let loaded = true;
  const fresh = recorderFor(history, 60_000, counting);
  fresh.readLoadedRooms(() =>
    loaded ? { clock: 9, schema: serverSchema(), records: [] } : undefined
  );
  fresh.onDocumentChanged("r2", 9);
  fresh.onLastSessionLeft("r2");
  loaded = false; // the room unloads before the write runs
  await fresh.flush();
  assert.equal(loads, 0, "the document was not read back from the store");
  const versions = await history.list("r2");
  assert.deepEqual(versions.map((v) => [v.clock, v.reason]), [[9, "last_leave"]]);
});

Deno.test(`[${TEST_ENGINE}] history recorder: a big document waits an interval more per 4 MB between versions`, async () => {
  await using database = await openTestDatabase();
  const history = new HistoryStore(database);
  const recorder = recorderFor(history, 250);
  let clock = 0;
  // A 9 MB document for one room (three intervals between its versions), a small one for another.
  const big = JSON.stringify({ id: "shape:big", typeName: "shape", text: "x".repeat(9 << 20) });
  recorder.readLoadedRooms((roomId) => ({
    clock,
    schema: serverSchema(),
    recordTexts: roomId === "big" ? [big] : [],
  }));
  const started = Date.now();
  while (Date.now() - started < 1_200) {
    clock++;
    recorder.onDocumentChanged("big", clock);
    recorder.onDocumentChanged("small", clock);
    await sleep(10);
  }
  await recorder.flush();
  const bigVersions = (await history.list("big")).length;
  const smallVersions = (await history.list("small")).length;
  // Small: one per 250 ms and one at flush (~6). Big: at 0, at 250 ms (its size is known only
  // once its first write finished), then one per 750 ms, and one at flush (3–4).
  assert.ok(bigVersions <= 4, `big: ${bigVersions}`);
  assert.ok(smallVersions >= bigVersions + 2, `small: ${smallVersions}, big: ${bigVersions}`);
  assert.ok((await history.list("big"))[0]!.size > 9 << 20);
});

/** A record as a snapshot load yields it, whose parsed form must not be needed. */
class UnparsedRecord extends LazyRecord {
  override get state(): never {
    throw new Error(`record ${this.id} was parsed`);
  }
}

Deno.test(`[${TEST_ENGINE}] history recorder: a room no longer loaded is copied from its stored JSON, unparsed`, async () => {
  await using database = await openTestDatabase();
  const history = new HistoryStore(database);
  const records = [1, 2, 3].map((n) => ({
    id: `shape:s${n}`,
    typeName: "shape",
    props: { text: `Grüße ${n}` },
  }));
  const store = new MemoryRoomStore();
  const unparsed = withOverrides(store, {
    load: (roomId) =>
      Promise.resolve(
        roomId === "r3"
          ? {
            meta: { documentClock: 7, tombstoneHistoryStartsAtClock: 0, schema: serverSchema() },
            records: records.map((r) => new UnparsedRecord(r.id, JSON.stringify(r), 7)),
            tombstones: new Map(),
          }
          : null,
      ),
  });
  const recorder = recorderFor(history, 60_000, unparsed);
  recorder.onDocumentChanged("r3", 7);
  await recorder.flush();
  const [version] = await history.list("r3");
  assert.equal(version?.clock, 7);
  const copy = await history.get("r3", version!.id);
  assert.deepEqual(copy?.snapshot.records, records);
});

Deno.test(`[${TEST_ENGINE}] history recorder: many rooms' versions are stored together, each once`, async () => {
  await using database = await openTestDatabase();
  const history = new CountingHistoryStore(database);
  const recorder = recorderFor(history, 60_000);
  const clocks = new Map<string, number>();
  recorder.readLoadedRooms((roomId) => {
    const clock = clocks.get(roomId);
    if (clock === undefined) return undefined;
    return {
      clock,
      schema: serverSchema(),
      records: [{ id: `shape:${roomId}`, typeName: "shape", x: clock }],
    };
  });
  const rooms = Array.from({ length: 30 }, (_, i) => `many-${i}`);
  // One room already has a version at the clock it will be at: not stored twice.
  await history.add("many-0", { clock: 3, schema: serverSchema(), records: [] }, "interval");
  for (const roomId of rooms) {
    clocks.set(roomId, 3);
    recorder.onDocumentChanged(roomId, 3);
  }
  await recorder.flush();
  // The first change of each room is due at once: all of them wait for the same turn.
  assert.ok(history.batches.length <= 3, `statements: ${history.batches.join(", ")}`);
  assert.equal(history.batches.reduce((a, b) => a + b, 0), rooms.length);
  for (const roomId of rooms) {
    const versions = await history.list(roomId);
    assert.equal(versions.length, 1, roomId);
    assert.equal(versions[0]!.clock, 3);
    if (roomId === "many-0") continue;
    const stored = await history.get(roomId, versions[0]!.id);
    assert.deepEqual(stored?.snapshot.records.map((r) => r.id), [`shape:${roomId}`]);
    assert.equal(stored?.reason, "interval");
  }
});

Deno.test(`[${TEST_ENGINE}] history recorder: interval versions of rooms due close together share a statement`, async () => {
  await using database = await openTestDatabase();
  const history = new CountingHistoryStore(database);
  // Versions fall due on multiples of 100 ms (an eighth of the interval).
  const recorder = recorderFor(history, 800);
  let clock = 0;
  recorder.readLoadedRooms(() => ({ clock, schema: serverSchema(), records: [] }));
  while (Date.now() % 100 < 5 || Date.now() % 100 > 15) await sleep(1);
  // Room a's first version now, room b's 40 ms later: apart, each in its own statement.
  recorder.onDocumentChanged("a", ++clock);
  await sleep(40);
  recorder.onDocumentChanged("b", ++clock);
  await sleep(20);
  assert.deepEqual(history.batches, [1, 1]);
  // Both keep changing: their next versions, 800 ms after their first ones, fall due together.
  const started = Date.now();
  while (Date.now() - started < 900) {
    clock++;
    recorder.onDocumentChanged("a", clock);
    recorder.onDocumentChanged("b", clock);
    await sleep(10);
  }
  assert.equal(history.batches[2], 2, `statements: ${history.batches.join(", ")}`);
  await recorder.flush();
});

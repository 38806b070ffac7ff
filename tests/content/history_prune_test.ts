/**
 * History retention against the real database: prune thins versions past the dense window, always
 * keeps the room's newest version, and reads only the rows it may drop (not the room's whole dense
 * day); the recorder prunes a room at most once per ten minutes.
 */
import assert from "node:assert/strict";
import type { KyselyPlugin } from "kysely";
import { HistoryRecorder, HistoryStore, type RetentionPolicy } from "../../sync/content/history.ts";
import { serverSchema } from "../../sync/content/document.ts";
import { MemoryRoomStore } from "../../sync/tldraw/memory_room_store.ts";
import { createLogger } from "../../log.ts";
import { openTestDatabase, TEST_ENGINE, type TestDatabase } from "../helpers/db.ts";

const engine = `[${TEST_ENGINE}]`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const HOUR = 3_600_000;
const POLICY: RetentionPolicy = { denseMs: 24 * HOUR, bucketMs: HOUR, maxAgeMs: 10 * 24 * HOUR };

// @tldraw/utils schedules a 100 ms timer when first imported; let it fire before the tests start.
await sleep(150);

/** Counts the rows every query returns (what prune reads). */
function rowCounter(): KyselyPlugin & { rows: number } {
  return {
    rows: 0,
    transformQuery: (args) => args.node,
    transformResult(args) {
      this.rows += args.result.rows.length;
      return Promise.resolve(args.result);
    },
  };
}

/** A store whose reads are counted, and a helper adding a version created at a given time. */
function historyOn(database: TestDatabase) {
  const counter = rowCounter();
  const history = new HistoryStore({ ...database, db: database.db.withPlugin(counter) });
  let clock = 0;
  const addAt = async (roomId: string, createdAt: number) => {
    const version = await history.add(
      roomId,
      { clock: ++clock, schema: serverSchema(), records: [] },
      "interval",
      createdAt,
    );
    return Number(version!.id);
  };
  const remaining = async (roomId: string) =>
    (await history.list(roomId, 1_000)).map((v) => Number(v.id)).sort((a, b) => a - b);
  return { history, counter, addAt, remaining };
}

Deno.test(`${engine} history prune: thins past the dense window and reads only those rows`, async () => {
  await using database = await openTestDatabase();
  const { history, counter, addAt, remaining } = historyOn(database);
  // On an hour boundary, so the buckets below are where the comments say.
  const now = Math.floor(Date.now() / HOUR) * HOUR;
  await addAt("r1", now - 11 * 24 * HOUR); // past maxAgeMs: dropped
  const keptAt40h = await addAt("r1", now - 40 * HOUR);
  await addAt("r1", now - 30 * HOUR + 60_000); // older in its hour: dropped
  const keptAt30h = await addAt("r1", now - 30 * HOUR + 120_000); // newest of its hour: kept
  const dense: number[] = [];
  for (let i = 0; i < 20; i++) dense.push(await addAt("r1", now - 2 * HOUR + i * 1_000));
  const other = await addAt("r2", now - 11 * 24 * HOUR); // another room: never touched

  counter.rows = 0;
  assert.equal(await history.prune("r1", POLICY, now), 2);
  // The newest version, then the four versions past the dense window; none of the 20 dense ones.
  assert.equal(counter.rows, 1 + 4, "rows read by prune");
  assert.deepEqual(await remaining("r1"), [keptAt40h, keptAt30h, ...dense]);
  assert.deepEqual(await remaining("r2"), [other]);

  // Pruned again: nothing more to drop.
  assert.equal(await history.prune("r1", POLICY, now), 0);
});

Deno.test(`${engine} history prune: the newest version survives however old it is`, async () => {
  await using database = await openTestDatabase();
  const { history, addAt, remaining } = historyOn(database);
  const now = Math.floor(Date.now() / HOUR) * HOUR;
  await addAt("r1", now - 12 * 24 * HOUR);
  await addAt("r1", now - 11 * 24 * HOUR);
  const newest = await addAt("r1", now - 48 * HOUR); // past denseMs: a candidate row if not newest
  assert.equal(await history.prune("r1", POLICY, now), 2);
  assert.deepEqual(await remaining("r1"), [newest]);
  // Even past maxAgeMs.
  assert.equal(await history.prune("r1", POLICY, now + 365 * 24 * HOUR), 0);
  assert.deepEqual(await remaining("r1"), [newest]);
  // A room without versions.
  assert.equal(await history.prune("empty", POLICY, now), 0);
});

/** The real store, its prunes counted per room. */
class CountingHistoryStore extends HistoryStore {
  prunes = new Map<string, number>();
  override prune(...args: Parameters<HistoryStore["prune"]>) {
    this.prunes.set(args[0], (this.prunes.get(args[0]) ?? 0) + 1);
    return super.prune(...args);
  }
}

Deno.test(`${engine} history recorder: prunes a room once, not on every version`, async () => {
  await using database = await openTestDatabase();
  const history = new CountingHistoryStore(database);
  const recorder = new HistoryRecorder({
    history,
    store: new MemoryRoomStore(),
    log: createLogger("error"),
    intervalMs: 40,
    retention: POLICY,
  });
  let clock = 0;
  recorder.readLoadedRooms(() => ({ clock, schema: serverSchema(), records: [] }));
  // ~0.5 s of commits in two rooms: a version every 40 ms each.
  const started = Date.now();
  while (Date.now() - started < 500) {
    recorder.onDocumentChanged("r1", ++clock);
    recorder.onDocumentChanged("r2", ++clock);
    await sleep(10);
  }
  await recorder.flush();
  const versions = (await history.list("r1")).length;
  assert.ok(versions >= 4, `versions of r1: ${versions}`);
  assert.deepEqual([...history.prunes.entries()].sort(), [["r1", 1], ["r2", 1]]);
});

/**
 * Pipelined commits on a remote KV (kv_pipeline.ts): the bookkeeping alone, then the KV room store
 * on a KV whose commits land out of order, alone and with another isolate committing in between.
 */
import assert from "node:assert/strict";
import { Writes } from "../../sync/tldraw/kv_writes.ts";
import { PIPELINE_DEPTH, type PreparedStep, RoomPipeline } from "../../sync/tldraw/kv_pipeline.ts";
import { KvRoomStore } from "../../sync/tldraw/kv_room_store.ts";
import type { ChangeSet, CommitResult, RoomData } from "../../sync/tldraw/room_store.ts";
import { Random } from "../helpers/fuzz.ts";
import { jitteryKv } from "../helpers/jittery_kv.ts";

const step = (clock: number): PreparedStep => ({
  clock,
  writes: new Writes(),
  entry: { p: [], d: [] },
  size: 0,
});

/** A pipeline and the outcomes of its commits, in the order they settled. */
function pipeline() {
  const pipe = new RoomPipeline<{ clock: number }>("lease", 0, { clock: 0 });
  const settled: string[] = [];
  let clock = 0;
  const issue = () => {
    const own = [step(++clock)];
    const commit = pipe.next(own, { clock });
    pipe.issued(commit, own).then(
      (result) => settled.push(`${commit.n}:${result.ok ? "ok" : result.error}`),
      (error) => settled.push(`${commit.n}:threw ${error.message}`),
    );
    return commit;
  };
  return { pipe, settled, issue };
}

Deno.test("pipeline: commits carry what is not known to have landed, and settle in order", async () => {
  const { pipe, settled, issue } = pipeline();
  const first = issue();
  const second = issue();
  assert.deepEqual(first.covers, [1]);
  assert.deepEqual(second.covers, [1, 2]);
  assert.deepEqual(second.steps.map((s) => s.clock), [1, 2]);
  pipe.returned(1, "v1");
  const third = issue();
  assert.deepEqual(third.covers, [2, 3], "commit 1 landed: no longer carried");
  assert.deepEqual(third.steps.map((s) => s.clock), [2, 3]);
  assert.deepEqual(third.deletes, [1], "nothing checks pipe key 1 any more");
  pipe.returned(2, "v2");
  pipe.returned(3, "v3");
  await null;
  assert.deepEqual(settled, ["1:ok", "2:ok", "3:ok"]);
  assert.equal(pipe.confirmedClock, 3);
  assert.deepEqual(pipe.landed, { meta: { clock: 3 }, versionstamp: "v3" });
  // Nor pipe keys 2 and 3 now: the next commit deletes them.
  assert.deepEqual(issue().deletes, [2, 3]);
  assert.equal(pipe.over, false);
});

Deno.test("pipeline: a later commit that lands first settles the earlier ones, which then fail", async () => {
  const { pipe, settled, issue } = pipeline();
  issue();
  issue();
  issue();
  pipe.returned(3, "v3");
  await null;
  assert.deepEqual(settled, ["1:ok", "2:ok", "3:ok"]);
  pipe.returned(1, null);
  pipe.returned(2, null);
  assert.equal(pipe.over, false, "their failures were expected: the pipeline goes on");
  assert.equal(pipe.accepts(3), true);
});

Deno.test("pipeline: after a failure nothing joins; what no later commit covers fails", async () => {
  const { pipe, settled, issue } = pipeline();
  issue();
  issue();
  issue();
  pipe.returned(2, null);
  assert.equal(pipe.accepts(3), false);
  pipe.returned(1, "v1");
  await null;
  assert.deepEqual(settled, ["1:ok"]);
  pipe.returned(3, null);
  await null;
  assert.deepEqual(settled, ["1:ok", "2:conflict", "3:conflict"]);
  assert.equal(pipe.over, true);
  assert.equal(pipe.confirmedClock, 1);
});

Deno.test("pipeline: an operation that threw fails the commits no later one covers", async () => {
  const { pipe, settled, issue } = pipeline();
  issue();
  issue();
  pipe.threw(1, new Error("unreachable"));
  pipe.returned(2, null);
  await null;
  assert.deepEqual(settled, ["1:threw unreachable", "2:threw unreachable"]);
  assert.equal(pipe.over, true);
});

Deno.test("pipeline: at most PIPELINE_DEPTH commits in flight, and only after the last one issued", () => {
  const { pipe, issue } = pipeline();
  assert.equal(pipe.accepts(1), false, "not after the clock it expects");
  for (let i = 0; i < PIPELINE_DEPTH; i++) issue();
  assert.equal(pipe.accepts(PIPELINE_DEPTH), false);
  pipe.returned(1, "v1");
  assert.equal(pipe.accepts(PIPELINE_DEPTH), true);
});

// --- The KV room store on a KV whose commits land out of order.

const ROOM = "r";
const shape = (id: string, x: number) => ({ id, typeName: "shape", x });
const emptyRoom = (): RoomData => ({
  meta: { documentClock: 0, tombstoneHistoryStartsAtClock: 0, schema: { schemaVersion: 2 } },
  records: [],
  tombstones: new Map(),
});
/** Step `i`: moves the shared shape to `i` and creates a shape of its own. */
const change = (i: number, by = "a"): ChangeSet => ({
  puts: [{ record: shape("shape:moved", i) }, { record: shape(`shape:${by}${i}`, i) }],
  deletes: [],
  writer: by,
});

/** Two isolates' stores on one KV: A's operations wait 0–`aMs` ms, B's 0–`bMs`. */
async function remoteStores(seed: number, aMs = 8, bMs = 8) {
  const local = await Deno.openKv(":memory:");
  const random = new Random(seed);
  const a = jitteryKv(local, () => random.int(0, aMs));
  const b = jitteryKv(local, () => random.int(0, bMs));
  const options = { remote: true, commitsInFlight: 8, logSize: 100 };
  return {
    local,
    stats: a.stats,
    a: new KvRoomStore(a.kv, options),
    b: new KvRoomStore(b.kv, options),
  };
}

/**
 * Commits `count` steps from `from` as a room engine would: pipelined while the store takes them,
 * else after what is in flight, normally. The results in order, with each step's number.
 */
async function commitAll(store: KvRoomStore, from: number, count: number) {
  const results: Promise<{ i: number; result: CommitResult }>[] = [];
  let awaited = 0;
  let clock = from;
  steps: for (let i = from + 1; i <= from + count; i++) {
    for (;;) {
      const pipelined = store.pipelineSteps(ROOM, clock, [change(i)]);
      if (pipelined) {
        results.push(pipelined.then((result) => ({ i, result })));
        clock++;
        continue steps;
      }
      if (awaited === results.length) break;
      // The pipeline is full or in doubt: wait for its oldest commit.
      if (!(await results[awaited++]!).result.ok) break steps;
    }
    const result = await store.commitSteps(ROOM, clock, [change(i)]);
    results.push(Promise.resolve({ i, result }));
    awaited = results.length;
    if (!result.ok) break;
    clock++;
  }
  return await Promise.all(results);
}

Deno.test("KV room store, remote: pipelined commits landing out of order leave every step, in order", async () => {
  const { local, stats, a } = await remoteStores(7);
  try {
    assert.equal(await a.create(ROOM, emptyRoom()), true);
    const results = await commitAll(a, 0, 60);
    assert.ok(results.every(({ result }) => result.ok), JSON.stringify(results));
    assert.ok(stats.maxCommitsInFlight > 2, `in flight at once: ${stats.maxCommitsInFlight}`);
    assert.ok(stats.reordered > 0, "the KV applied some commits out of order");

    const data = (await a.load(ROOM))!;
    assert.equal(data.meta.documentClock, 60);
    const records = new Map(data.records.map((r) => [r.state.id, r]));
    assert.deepEqual(records.get("shape:moved")?.state, shape("shape:moved", 60));
    assert.equal(records.get("shape:moved")?.lastChangedClock, 60);
    for (let i = 1; i <= 60; i++) assert.ok(records.has(`shape:a${i}`), `step ${i} lost`);
    const log = await a.stepsSince(ROOM, 0);
    assert.equal(log.kind, "steps");
    if (log.kind === "steps") {
      assert.deepEqual(log.steps.map((s) => s.clock), Array.from({ length: 60 }, (_, i) => i + 1));
      for (const s of log.steps) {
        assert.ok(s.puts.some((p) => p.state.id === `shape:a${s.clock}`), `log of ${s.clock}`);
      }
    }
    // The pipe keys of settled commits are deleted by later ones (the last ones expire): of one
    // per commit, the early ones are gone.
    const pipeKeys = await Array.fromAsync(local.list({ prefix: ["tldraw", ROOM, "pipe"] }));
    assert.ok(pipeKeys.length < 50, `${pipeKeys.length} pipe keys left`);
    assert.ok(pipeKeys.every(({ key }) => Number(key.at(-1)) > 10), "early pipe keys deleted");
  } finally {
    local.close();
  }
});

Deno.test("KV room store, remote: another isolate's commit fences the pipeline; nothing acknowledged is lost", async () => {
  let fenced = 0;
  for (const seed of [1, 2, 3, 4, 5]) {
    // A's operations take up to 40 ms; B, which knows nothing of A's pipeline, commits after 20.
    const { local, a, b } = await remoteStores(seed, 40, 0);
    try {
      assert.equal(await a.create(ROOM, emptyRoom()), true);
      assert.deepEqual(await a.commitSteps(ROOM, 0, [change(1)]), { ok: true, clock: 1 });
      const pipelined = commitAll(a, 1, 12);
      await new Promise((resolve) => setTimeout(resolve, 20));
      let bClock = -1;
      for (let attempt = 0; attempt < 50; attempt++) {
        const clock = await b.readClock(ROOM);
        const result = await b.commitSteps(ROOM, clock, [change(100, "b")]);
        if (result.ok) {
          bClock = result.clock;
          break;
        }
      }
      assert.ok(bClock > 1, "B committed");
      const results = await pipelined;
      // A's results: committed ones first, then (once fenced) only failures.
      const firstFailed = results.findIndex(({ result }) => !result.ok);
      const acked = firstFailed < 0 ? results : results.slice(0, firstFailed);
      assert.ok(results.slice(acked.length).every(({ result }) => !result.ok));
      if (acked.length < results.length) fenced++;

      const data = (await a.load(ROOM))!;
      const ids = new Set(data.records.map((r) => r.state.id));
      assert.ok(ids.has("shape:b100"), `seed ${seed}: B's acknowledged commit was overwritten`);
      for (const { i } of acked) assert.ok(ids.has(`shape:a${i}`), `seed ${seed}: step ${i} lost`);
      for (const { i } of results.slice(acked.length)) {
        assert.ok(!ids.has(`shape:a${i}`), `seed ${seed}: failed step ${i} is stored`);
      }
      assert.equal(data.meta.documentClock, 1 + acked.length + 1, `seed ${seed}: clock`);
      const log = await a.stepsSince(ROOM, 0);
      assert.equal(log.kind, "steps");
      if (log.kind === "steps") assert.equal(log.steps.length, data.meta.documentClock);
    } finally {
      local.close();
    }
  }
  assert.ok(fenced > 0, "B's commit landed while A's were in flight");
});

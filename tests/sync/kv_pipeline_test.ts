/**
 * Pipelined commits on a remote KV (kv_pipeline.ts): the bookkeeping alone, then the KV room store
 * on a KV whose commits land out of order, alone and with another isolate committing in between.
 */
import assert from "node:assert/strict";
import { Writes } from "../../sync/tldraw/kv_writes.ts";
import {
  PIPELINE_DEPTH,
  PIPELINE_MAX_AGE_MS,
  type PreparedStep,
  RoomPipeline,
} from "../../sync/tldraw/kv_pipeline.ts";
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

/**
 * A pipeline whose operations answer when the test says: `answer(n, versionstamp | null | Error)`
 * answers the oldest unanswered send of commit `n`. `sends` counts each commit's sends; `settled`
 * lists the outcomes in the order they settled.
 */
function pipeline(now = Date.now()) {
  const pipe = new RoomPipeline<{ clock: number }>("p1", "lease", 0, { clock: 0 }, now);
  const settled: string[] = [];
  const sends = new Map<number, number>();
  const waiting = new Map<number, PromiseWithResolvers<string | null>[]>();
  let clock = 0;
  const issue = () => {
    const own = [step(++clock)];
    const commit = pipe.next(own, { clock });
    pipe.issue(commit, () => {
      sends.set(commit.n, (sends.get(commit.n) ?? 0) + 1);
      const answer = Promise.withResolvers<string | null>();
      waiting.set(commit.n, [...(waiting.get(commit.n) ?? []), answer]);
      return answer.promise;
    }).then(
      (result) => settled.push(`${commit.n}:${result.ok ? "ok" : result.error}`),
      (error) => settled.push(`${commit.n}:threw ${error.message}`),
    );
    return commit;
  };
  const answer = async (n: number, outcome: string | null | Error) => {
    const next = waiting.get(n)?.shift();
    assert.ok(next, `commit ${n} has no send waiting`);
    if (outcome instanceof Error) next.reject(outcome);
    else next.resolve(outcome);
    // Let the answer and what it settles run.
    for (let i = 0; i < 5; i++) await null;
  };
  return { pipe, settled, sends, issue, answer };
}

Deno.test("pipeline: each commit checks that the one before landed, creates a marker ahead, and settles in order", async () => {
  const { pipe, settled, issue, answer } = pipeline();
  const first = issue();
  const second = issue();
  assert.deepEqual(
    [first.n, first.marker, first.after, first.ahead],
    [1, "lease", 0, 1 + PIPELINE_DEPTH],
  );
  assert.deepEqual(
    [second.n, second.marker, second.after, second.ahead],
    [2, "lease", 1, 2 + PIPELINE_DEPTH],
  );
  assert.deepEqual(second.steps.map((s) => s.clock), [2], "only its own steps");
  await answer(2, "v2");
  assert.deepEqual(settled, [], "not before the commit ahead of it");
  await answer(1, "v1");
  assert.deepEqual(settled, ["1:ok", "2:ok"]);
  assert.equal(pipe.confirmedClock, 2);
  assert.deepEqual(pipe.landed, { meta: { clock: 2 }, versionstamp: "v2" });
  assert.equal(pipe.over, false);
});

Deno.test("pipeline: commit n + PIPELINE_DEPTH waits for commit n, whose versionstamp its marker has", async () => {
  const { pipe, issue, answer } = pipeline();
  for (let i = 0; i < PIPELINE_DEPTH; i++) issue();
  assert.equal(pipe.accepts(PIPELINE_DEPTH), false, "depth reached");
  assert.equal(pipe.accepts(PIPELINE_DEPTH - 1), false, "not after the clock it expects");
  await answer(1, "v1");
  assert.equal(pipe.accepts(PIPELINE_DEPTH), true);
  assert.equal(issue().marker, "v1");
});

Deno.test("pipeline: a commit that reached the KV before the one ahead of it is sent once more after that one landed", async () => {
  const { pipe, settled, sends, issue, answer } = pipeline();
  issue();
  issue();
  issue();
  await answer(2, null);
  await answer(3, null);
  assert.equal(sends.get(2), 1, "not again while commit 1 is in flight");
  await answer(1, "v1");
  assert.equal(sends.get(2), 2);
  assert.equal(sends.get(3), 1, "commit 3 waits for commit 2");
  await answer(2, "v2");
  assert.equal(sends.get(3), 2);
  await answer(3, "v3");
  assert.deepEqual(settled, ["1:ok", "2:ok", "3:ok"]);
  assert.equal(pipe.over, false);
  assert.equal(pipe.accepts(3), true);
});

Deno.test("pipeline: a commit that fails twice was fenced: it and every later one fail, and nothing joins", async () => {
  const { pipe, settled, issue, answer } = pipeline();
  issue();
  issue();
  issue();
  await answer(1, "v1");
  await answer(2, null);
  assert.equal(pipe.accepts(3), true, "resent: not in doubt yet");
  await answer(2, null);
  // Commit 3 cannot land any more (marker 2 stays): it fails without waiting for its answer.
  assert.deepEqual(settled, ["1:ok", "2:conflict", "3:conflict"]);
  assert.equal(pipe.over, true);
  assert.equal(pipe.accepts(3), false);
  assert.equal(pipe.confirmedClock, 1);
  await answer(3, "late"); // ignored
  assert.deepEqual(settled, ["1:ok", "2:conflict", "3:conflict"]);
});

Deno.test("pipeline: an operation that threw fails what no later commit shows landed", async () => {
  const { pipe, settled, issue, answer } = pipeline();
  issue();
  issue();
  await answer(1, new Error("unreachable"));
  assert.equal(pipe.accepts(2), false, "in doubt");
  assert.deepEqual(settled, [], "commit 2 may still land, and then commit 1 did");
  await answer(2, null);
  assert.deepEqual(settled, ["1:threw unreachable", "2:threw unreachable"]);
  assert.equal(pipe.over, true);
});

Deno.test("pipeline: a commit that threw landed if a later one did", async () => {
  const { pipe, settled, issue, answer } = pipeline();
  issue();
  issue();
  await answer(1, new Error("timeout"));
  await answer(2, "v2");
  assert.deepEqual(settled, ["1:ok", "2:ok"]);
  assert.equal(pipe.confirmedClock, 2);
  assert.equal(pipe.over, true, "commit 1's versionstamp, which marker 9 has, is unknown");
});

Deno.test("pipeline: takes no commits once older than PIPELINE_MAX_AGE_MS (its markers expire)", () => {
  const { pipe } = pipeline(1_000);
  assert.equal(pipe.accepts(0, 1_000 + PIPELINE_MAX_AGE_MS - 1), true);
  assert.equal(pipe.accepts(0, 1_000 + PIPELINE_MAX_AGE_MS), false);
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
    // Each commit consumed its marker and created one ahead: a pipeline leaves PIPELINE_DEPTH
    // (which expire), however many commits it made.
    const markers = await Array.fromAsync(local.list({ prefix: ["tldraw", ROOM, "pipe"] }));
    const perPipeline = Map.groupBy(markers, ({ key }) => String(key.at(-2)));
    for (const [id, left] of perPipeline) {
      assert.equal(left.length, PIPELINE_DEPTH, `pipeline ${id}: ${left.length} markers left`);
    }
    assert.ok(
      markers.some(({ key }) => Number(key.at(-1)) > 40),
      "a pipeline made most of the 60 commits",
    );
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

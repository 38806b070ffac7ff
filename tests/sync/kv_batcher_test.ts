/**
 * Group commit on Deno KV: concurrent writes merge into one atomic operation, writes of one group
 * never merge, and a merged operation that fails is retried write by write so each caller gets its
 * own outcome.
 */
import assert from "node:assert/strict";
import { type BatchedWrite, KvBatcher } from "../../sync/tldraw/kv_batcher.ts";

function setWrite(group: string, key: Deno.KvKey, value: unknown, check?: Deno.AtomicCheck) {
  return {
    group,
    checks: check ? 1 : 0,
    mutations: 1,
    bytes: 100,
    apply: (op: Deno.AtomicOperation) => {
      if (check) op.check(check);
      op.set(key, value);
    },
  } satisfies BatchedWrite;
}

/** Like {@link setWrite}, telling the batcher what it checks. */
function checkedWrite(group: string, key: Deno.KvKey, value: unknown, check?: Deno.AtomicCheck) {
  return { ...setWrite(group, key, value, check), checked: check ? [check] : [] };
}

Deno.test("KvBatcher: writes issued together share operations; one group's writes stay apart and in order", async () => {
  await using kv = await Deno.openKv(":memory:");
  const batcher = new KvBatcher(kv);
  const results = await Promise.all([
    ...Array.from({ length: 10 }, (_, i) => batcher.commit(setWrite(`g${i}`, ["k", i], i))),
    batcher.commit(setWrite("same", ["s"], 1)),
    batcher.commit(setWrite("same", ["s"], 2)),
  ]);
  assert.ok(results.every((r) => r.ok));
  assert.ok(batcher.merged >= 1, "nothing was merged");
  // The 10 independent writes took fewer versionstamps than writes.
  const stamps = new Set(results.slice(0, 10).map((r) => (r as Deno.KvCommitResult).versionstamp));
  assert.ok(stamps.size < 10);
  assert.equal((await kv.get(["s"])).value, 2);
});

Deno.test("KvBatcher: a failed check fails only its own write", async () => {
  await using kv = await Deno.openKv(":memory:");
  await kv.set(["meta"], 1);
  const batcher = new KvBatcher(kv);
  const [first, stale, other] = await Promise.all([
    batcher.commit(setWrite("a", ["x"], 1)),
    batcher.commit(
      setWrite("b", ["y"], 1, { key: ["meta"], versionstamp: "00000000000000000000" }),
    ),
    batcher.commit(setWrite("c", ["z"], 1)),
  ]);
  assert.equal(first.ok, true);
  assert.equal(stale.ok, false);
  assert.equal(other.ok, true);
  assert.equal((await kv.get(["y"])).value, null);
  assert.equal((await kv.get(["z"])).value, 1);
});

Deno.test("KvBatcher: writes that say what they check: a stale one fails after one read, the rest commit together", async () => {
  await using kv = await Deno.openKv(":memory:");
  const metas: Deno.KvCommitResult[] = [];
  for (let i = 0; i < 20; i++) metas.push(await kv.set(["meta", i], 0) as Deno.KvCommitResult);
  // Rooms 3 and 11 moved on since their writers read them.
  await kv.set(["meta", 3], 1);
  await kv.set(["meta", 11], 1);
  const batcher = new KvBatcher(kv, { inFlight: 1 });
  // A first write occupies the batcher so that the next 20 queue up and merge.
  const first = batcher.commit(checkedWrite("first", ["first"], 1));
  const results = await Promise.all(
    metas.map((meta, i) =>
      batcher.commit(
        checkedWrite(`room:${i}`, ["rec", i], i, {
          key: ["meta", i],
          versionstamp: meta.versionstamp,
        }),
      )
    ),
  );
  assert.equal((await first).ok, true);
  assert.equal(results.filter((r) => !r.ok).length, 2);
  assert.equal(results[3]!.ok, false);
  assert.equal(results[11]!.ok, false);
  assert.equal((await kv.get(["rec", 3])).value, null);
  assert.equal((await kv.get(["rec", 4])).value, 4);
  // One failed merged operation, one read, one merged retry: no splitting in halves.
  assert.equal(batcher.triaged, 1);
  const stamps = new Set(
    results.filter((r) => r.ok).map((r) => (r as Deno.KvCommitResult).versionstamp),
  );
  assert.equal(stamps.size, 1);
});

Deno.test("KvBatcher: a write that throws rejects only its caller", async () => {
  await using kv = await Deno.openKv(":memory:");
  const batcher = new KvBatcher(kv);
  const bad: BatchedWrite = {
    group: "bad",
    checks: 0,
    mutations: 1,
    bytes: 100,
    apply: (op) => op.set(["big"], "x".repeat(70_000)), // over KV's 64 KiB value limit
  };
  const [ok, failed] = await Promise.allSettled([
    batcher.commit(setWrite("a", ["fine"], 1)),
    batcher.commit(bad),
  ]);
  assert.equal(ok.status, "fulfilled");
  assert.equal(failed.status, "rejected");
  assert.equal((await kv.get(["fine"])).value, 1);
});

Deno.test("KvBatcher: writeSlot is free when idle; a write issued when the slot opens joins the next operation", async () => {
  await using kv = await Deno.openKv(":memory:");
  const batcher = new KvBatcher(kv, { inFlight: 1 });
  assert.equal(batcher.writeSlot(), undefined, "nothing in flight: write at once");
  const first = batcher.commit(setWrite("a", ["a"], 1));
  const slot = batcher.writeSlot();
  assert.ok(slot, "a write is in flight");
  // Two callers wait for the slot, then write after a few microtasks (as a room plans its group).
  const late = [1, 2].map(async (i) => {
    await slot;
    await null;
    await null;
    return batcher.commit(setWrite(`late${i}`, ["late", i], i));
  });
  const [done, ...rest] = await Promise.all([first, ...late]);
  assert.ok(done.ok);
  const stamps = rest.map((r) => (r as Deno.KvCommitResult).versionstamp);
  assert.ok(rest.every((r) => r.ok));
  assert.notEqual(stamps[0], (done as Deno.KvCommitResult).versionstamp);
  assert.equal(stamps[0], stamps[1], "the woken writes went into one operation");
  assert.equal(batcher.merged, 1);
  assert.equal(batcher.writeSlot(), undefined);
});

/** `kv` whose commits take 20 ms more, counting the operations committing at once. */
function slowKv(kv: Deno.Kv): { kv: Deno.Kv; most: () => number } {
  let committing = 0;
  let most = 0;
  const slow = new Proxy(kv, {
    get(target, property) {
      if (property !== "atomic") {
        const value = Reflect.get(target, property, target);
        return typeof value === "function" ? value.bind(target) : value;
      }
      return () => {
        const op = target.atomic();
        const commit = op.commit.bind(op);
        op.commit = async () => {
          most = Math.max(most, ++committing);
          await new Promise((resolve) => setTimeout(resolve, 20));
          try {
            return await commit();
          } finally {
            committing--;
          }
        };
        return op;
      };
    },
  });
  return { kv: slow, most: () => most };
}

Deno.test("KvBatcher: two operations in flight at once, never two writes of one group", async () => {
  await using kv = await Deno.openKv(":memory:");
  const slow = slowKv(kv);
  const batcher = new KvBatcher(slow.kv, { inFlight: 2 });
  const first = batcher.commit(setWrite("a", ["a"], 1));
  const second = batcher.commit(setWrite("b", ["b"], 1));
  assert.ok(batcher.writeSlot(), "both slots are taken");
  // The room's next write waits for its first one, even though it is queued behind nothing.
  const again = batcher.commit(setWrite("a", ["a"], 2));
  const results = await Promise.all([first, second, again]);
  assert.ok(results.every((r) => r.ok));
  assert.equal(slow.most(), 2);
  const stamp = (r: Deno.KvCommitResult | Deno.KvCommitError) =>
    (r as Deno.KvCommitResult).versionstamp;
  assert.ok(stamp(results[2]!) > stamp(results[0]!), "a's writes in order");
  assert.equal((await kv.get(["a"])).value, 2);
});

Deno.test("KvBatcher: writes of one sequence never share an operation, start in order, and may be in flight together", async () => {
  await using kv = await Deno.openKv(":memory:");
  const slow = slowKv(kv);
  const batcher = new KvBatcher(slow.kv, { inFlight: 2 });
  const inSequence = (n: number) => ({ ...setWrite(`r:${n}`, ["r", n], n), sequence: "r" });
  // Both operations busy: the sequence and another write queue up together.
  const busy = [batcher.commit(setWrite("a", ["a"], 1)), batcher.commit(setWrite("b", ["b"], 1))];
  const [one, two, three, other] = await Promise.all([
    batcher.commit(inSequence(1)),
    batcher.commit(inSequence(2)),
    batcher.commit(inSequence(3)),
    batcher.commit(setWrite("g", ["g"], 1)),
  ]);
  const stamps = [one, two, three].map(stampOf);
  assert.deepEqual([...stamps].sort(), stamps, "in queue order");
  assert.equal(new Set(stamps).size, 3, "each in its own operation");
  assert.ok(stamps.includes(stampOf(other)), "other writes still join them");
  assert.equal(slow.most(), 2, "the second went out while the first was in flight");
  assert.ok((await Promise.all(busy)).every((r) => r.ok));
});

const stampOf = (result: Deno.KvCommitResult | Deno.KvCommitError) => {
  assert.ok(result.ok);
  return result.versionstamp;
};
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("KvBatcher: with linger, while many groups write, writes issued apart in time share one operation", async () => {
  await using kv = await Deno.openKv(":memory:");
  const batcher = new KvBatcher(kv, { linger: 40 });
  // Forty rooms wrote during the last window: another is likely to come within a linger.
  await Promise.all(
    Array.from({ length: 40 }, (_, i) => batcher.commit(setWrite(`warm${i}`, ["w", i], i))),
  );
  await sleep(60);
  const writes: Promise<Deno.KvCommitResult | Deno.KvCommitError>[] = [];
  for (let i = 0; i < 4; i++) {
    writes.push(batcher.commit(setWrite(`room${i}`, ["r", i], i)));
    await sleep(2);
  }
  const stamps = new Set((await Promise.all(writes)).map(stampOf));
  assert.equal(stamps.size, 1, "writes 2 ms apart went in separate operations");
  for (let i = 0; i < 4; i++) assert.equal((await kv.get(["r", i])).value, i);
});

Deno.test("KvBatcher: with linger, one busy group (a single room) and a write after a quiet spell go at once", async () => {
  await using kv = await Deno.openKv(":memory:");
  const quiet = new KvBatcher(kv, { linger: 20 });
  // Quiet: the first write starts its operation before the second is issued.
  const first = quiet.commit(setWrite("a", ["a"], 1));
  await sleep(5);
  const second = quiet.commit(setWrite("b", ["b"], 1));
  assert.notEqual(stampOf(await first), stampOf(await second));
  // One room writing on and on is one group: nothing would join it, so it does not wait.
  const batcher = new KvBatcher(kv, { linger: 20 });
  for (let i = 0; i < 30; i++) await batcher.commit(setWrite("room", ["room"], i));
  await sleep(60);
  const third = batcher.commit(setWrite("room", ["room"], 30));
  await sleep(5);
  const fourth = batcher.commit(setWrite("c", ["c"], 1));
  assert.notEqual(stampOf(await third), stampOf(await fourth));
  assert.equal((await kv.get(["room"])).value, 30);
});

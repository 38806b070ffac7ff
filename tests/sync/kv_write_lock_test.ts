/**
 * The KV write lock shared by the isolate Workers of one process: mutual exclusion, turns in ticket
 * order, no wedge after a holder or a waiter dies, and `withWriteLock` putting every write under it.
 */
import assert from "node:assert/strict";
import { createKvWriteLockBuffer, KvWriteLock, withWriteLock } from "../../sync/kv_write_lock.ts";
import { COUNTER, LOG, LOG_LENGTH } from "../helpers/kv_write_lock_worker.ts";

const WORKER = new URL("../helpers/kv_write_lock_worker.ts", import.meta.url);

function startWorker(): Worker {
  return new Worker(WORKER, { type: "module" });
}

function reply<T>(worker: Worker, message: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    worker.onmessage = (event) => resolve(event.data as T);
    worker.onerror = (event) => {
      event.preventDefault();
      reject(new Error(event.message));
    };
    worker.postMessage(message);
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("KvWriteLock: two Workers never overlap and take turns", async () => {
  const buffer = createKvWriteLockBuffer();
  const rounds = 100;
  const data = new SharedArrayBuffer((LOG + 2 * rounds) * 4);
  const workers = [startWorker(), startWorker()];
  try {
    await Promise.all(workers.map((w) => reply(w, { cmd: "ping" }))); // both loaded
    await Promise.all(
      workers.map((w, id) => reply(w, { cmd: "count", buffer, data, rounds, id })),
    );
    const cells = new Int32Array(data);
    // A read-pause-write in each turn: any overlap would lose an increment.
    assert.equal(Atomics.load(cells, COUNTER), 2 * rounds);
    const log = Array.from(cells.subarray(LOG, LOG + Atomics.load(cells, LOG_LENGTH)));
    assert.equal(log.length, 2 * rounds);
    // While both want it (between the first and the last switch: one may start or finish
    // earlier), a Worker holds one ticket at a time, so turns alternate.
    const first = log.findIndex((id) => id !== log[0]);
    const last = log.findLastIndex((id) => id !== log.at(-1));
    assert.ok(first > 0 && last > first, "the Workers never took turns");
    const both = log.slice(first, last + 1);
    let longest = 0;
    let run = 0;
    for (let i = 0; i < both.length; i++) {
      run = i > 0 && both[i] === both[i - 1] ? run + 1 : 1;
      longest = Math.max(longest, run);
    }
    assert.ok(longest <= 2, `one Worker held ${longest} turns in a row: ${log.join("")}`);
    assert.ok(both.length >= rounds, `they took turns only ${both.length} times: ${log.join("")}`);
  } finally {
    for (const w of workers) w.terminate();
  }
});

Deno.test("KvWriteLock: a terminated holder does not wedge the others", async () => {
  const buffer = createKvWriteLockBuffer();
  const holder = startWorker();
  try {
    await reply(holder, { cmd: "hold", buffer });
  } finally {
    holder.terminate();
  }
  const lock = new KvWriteLock(buffer, { stallMs: 200 });
  const started = performance.now();
  assert.equal(await lock.run(() => Promise.resolve("written")), "written");
  const waited = performance.now() - started;
  assert.ok(waited >= 150 && waited < 2_000, `waited ${waited} ms`);
  assert.equal(lock.stalled, 1);
  // The lock works normally afterwards.
  const again = performance.now();
  await lock.run(() => Promise.resolve());
  assert.ok(performance.now() - again < 500);
});

Deno.test("KvWriteLock: a turn its waiter does not start (dead or busy) goes to the next one", async () => {
  const buffer = createKvWriteLockBuffer();
  // Two handles on one buffer behave like two Workers (the lock lives in the shared memory).
  const a = new KvWriteLock(buffer, { stallMs: 5_000 });
  const b = new KvWriteLock(buffer, { stallMs: 5_000 });
  let release!: () => void;
  const held = a.run(() => new Promise<void>((resolve) => (release = resolve)));
  await sleep(10);
  // A Worker takes a ticket behind `a`, then is terminated while waiting.
  const waiter = startWorker();
  try {
    await reply(waiter, { cmd: "ping" });
    waiter.postMessage({ cmd: "hold", buffer });
    const tickets = new Int32Array(buffer);
    while (Atomics.load(tickets, 0) < 2) await sleep(5); // `a` took ticket 0, the Worker 1
  } finally {
    waiter.terminate();
  }
  release();
  await held;
  const started = performance.now();
  await b.run(() => Promise.resolve());
  const waited = performance.now() - started;
  assert.ok(waited < 1_000, `waited ${waited} ms`); // the hand-off (2 ms), not the stall (5 s)
  assert.equal(b.passed, 1);
});

Deno.test("KvWriteLock: writers in one thread run in order; a failing writer releases", async () => {
  const buffer = createKvWriteLockBuffer();
  // A long hand-off: strictly in ticket order even on a loaded machine.
  const a = new KvWriteLock(buffer, { handoffMs: 1_000 });
  const b = new KvWriteLock(buffer, { handoffMs: 1_000 });
  const order: string[] = [];
  const write = (lock: KvWriteLock, name: string, fail = false) =>
    lock.run(async () => {
      order.push(`${name} in`);
      await sleep(2);
      order.push(`${name} out`);
      if (fail) throw new Error(name);
    });
  const results = await Promise.allSettled([
    write(a, "a1"),
    write(b, "b1", true),
    write(a, "a2"),
    write(b, "b2"),
  ]);
  assert.deepEqual(results.map((r) => r.status), [
    "fulfilled",
    "rejected",
    "fulfilled",
    "fulfilled",
  ]);
  // No overlap, and the two handles alternate.
  assert.deepEqual(order, [
    "a1 in",
    "a1 out",
    "b1 in",
    "b1 out",
    "a2 in",
    "a2 out",
    "b2 in",
    "b2 out",
  ]);
});

Deno.test("withWriteLock: commits, set and delete wait for the lock; reads do not", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kv-lock-" });
  const buffer = createKvWriteLockBuffer();
  const other = new KvWriteLock(buffer);
  const kv = withWriteLock(await Deno.openKv(`${dir}/kv.sqlite3`), new KvWriteLock(buffer));
  try {
    let release!: () => void;
    const held = other.run(() => new Promise<void>((resolve) => (release = resolve)));
    await sleep(5);
    const done: string[] = [];
    const writes = [
      kv.atomic().set(["a"], 1).commit().then(() => done.push("atomic")),
      kv.set(["b"], 2).then(() => done.push("set")),
      kv.delete(["c"]).then(() => done.push("delete")),
    ];
    assert.equal((await kv.get(["a"])).value, null); // a read goes straight through
    await sleep(20);
    assert.deepEqual(done, []);
    release();
    await held;
    await Promise.all(writes);
    assert.deepEqual(done, ["atomic", "set", "delete"]);
    assert.equal((await kv.get(["a"])).value, 1);
    assert.ok(kv instanceof Deno.Kv);
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("withWriteLock: two Workers writing one KV file through the lock lose nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kv-lock-" });
  const path = `${dir}/kv.sqlite3`;
  (await Deno.openKv(path)).close();
  const buffer = createKvWriteLockBuffer();
  const workers = [startWorker(), startWorker()];
  try {
    const results = await Promise.all(
      workers.map((w, id) =>
        reply<{ failed: number; stalled: number }>(w, {
          cmd: "write",
          buffer,
          path,
          rounds: 100,
          id,
        })
      ),
    );
    assert.deepEqual(results.map((r) => r.failed), [0, 0]);
    assert.deepEqual(results.map((r) => r.stalled), [0, 0]);
    const kv = await Deno.openKv(path);
    try {
      let count = 0;
      for await (const _ of kv.list({ prefix: ["w"] })) count++;
      assert.equal(count, 2 * 100 * 10);
    } finally {
      kv.close();
    }
  } finally {
    for (const w of workers) w.terminate();
    await Deno.remove(dir, { recursive: true });
  }
});

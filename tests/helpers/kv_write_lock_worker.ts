/**
 * A Worker that uses the shared KV write lock, driven by tests/sync/kv_write_lock_test.ts.
 *
 * Messages: `{cmd: "ping"}` answers once the Worker runs; `{cmd: "count", buffer, data, rounds,
 * id}` runs `rounds` critical sections, each a read-pause-write of a shared counter (lost updates
 * if two overlap) that also appends `id` to a shared log; `{cmd: "hold", buffer}` takes the lock
 * and never gives it back; `{cmd: "write", buffer, path, rounds, id}` commits `rounds` writes to a
 * KV file through `withWriteLock`.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { KvWriteLock, withWriteLock } from "../../sync/kv_write_lock.ts";

/** Cells of the `data` buffer of "count": [counter, log length, log...]. */
export const COUNTER = 0;
export const LOG_LENGTH = 1;
export const LOG = 2;

type Command =
  | { cmd: "ping" }
  | { cmd: "count"; buffer: SharedArrayBuffer; data: SharedArrayBuffer; rounds: number; id: number }
  | { cmd: "hold"; buffer: SharedArrayBuffer }
  | {
    cmd: "write";
    buffer: SharedArrayBuffer;
    path: string;
    rounds: number;
    id: number;
    stallMs?: number;
  };

self.onmessage = async (event: MessageEvent<Command>) => {
  const message = event.data;
  if (message.cmd === "ping") {
    self.postMessage({ ready: true });
  } else if (message.cmd === "count") {
    // A long hand-off: turns go strictly in ticket order even on a loaded machine.
    const lock = new KvWriteLock(message.buffer, { handoffMs: 1_000 });
    const data = new Int32Array(message.data);
    await Promise.all(Array.from({ length: message.rounds }, () =>
      lock.run(async () => {
        const value = Atomics.load(data, COUNTER);
        await new Promise((resolve) => setTimeout(resolve, 0));
        Atomics.store(data, COUNTER, value + 1);
        const at = Atomics.add(data, LOG_LENGTH, 1);
        Atomics.store(data, LOG + at, message.id);
      })));
    self.postMessage({ done: true });
  } else if (message.cmd === "hold") {
    const lock = new KvWriteLock(message.buffer);
    void lock.run(() => {
      self.postMessage({ holding: true });
      return new Promise<void>(() => {}); // never released: the test terminates this Worker
    });
  } else if (message.cmd === "write") {
    const lock = new KvWriteLock(message.buffer, { stallMs: message.stallMs ?? 1_000 });
    const kv = withWriteLock(await Deno.openKv(message.path), lock);
    const started = performance.now();
    let failed = 0;
    await Promise.all(Array.from({ length: message.rounds }, async (_, i) => {
      try {
        const op = kv.atomic();
        for (let j = 0; j < 10; j++) op.set(["w", message.id, i, j], "value ".repeat(20));
        await op.commit();
      } catch {
        failed++;
      }
    }));
    kv.close();
    self.postMessage({
      done: true,
      failed,
      ms: performance.now() - started,
      stalled: lock.stalled,
    });
  }
};

import assert from "node:assert/strict";
import { macrotask, nextTurn } from "../../sync/next_turn.ts";

Deno.test("nextTurn: runs after the current task and its microtasks; cancelled, never", async () => {
  const order: string[] = [];
  nextTurn(() => order.push("next turn"));
  const cancel = nextTurn(() => order.push("cancelled"));
  queueMicrotask(() => order.push("microtask"));
  order.push("this task");
  cancel();
  await macrotask();
  await macrotask();
  assert.deepEqual(order, ["this task", "microtask", "next turn"]);
});

Deno.test("macrotask: lets timers that are due run between turns", async () => {
  let ticks = 0;
  const interval = setInterval(() => ticks++, 1);
  try {
    // Busy for a millisecond, then one turn, at most 1,000 times: the interval must get in.
    for (let turn = 0; turn < 1_000 && ticks < 3; turn++) {
      const start = performance.now();
      while (performance.now() - start < 1) { /* busy */ }
      await macrotask();
    }
    assert.ok(ticks >= 3, `interval ticks: ${ticks}`);
  } finally {
    clearInterval(interval);
  }
});

import assert from "node:assert/strict";
import { watchEventLoop } from "../event_loop_delay.ts";
import { startTestServer } from "./helpers/server.ts";

/** Keeps this thread busy for `ms` (nothing else on the event loop runs meanwhile). */
function block(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) { /* busy */ }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("watchEventLoop: a blocked loop shows as one late tick; stop ends the ticks", async () => {
  const delays: number[] = [];
  const watch = watchEventLoop((delay) => delays.push(delay), 10);
  await sleep(50);
  block(150);
  await sleep(50);
  watch.stop();
  const seen = delays.length;
  assert.ok(seen >= 2, `ticks observed: ${seen}`);
  assert.ok(delays.every((d) => d >= 0));
  const longest = Math.max(...delays);
  // The tick due during the block fired when it ended: at least ~140 ms late, not 150 + slack.
  assert.ok(longest >= 0.13 && longest < 1, `longest delay ${longest}`);
  await sleep(40);
  assert.equal(delays.length, seen, "no tick after stop");
});

Deno.test("GET /metrics: event_loop_delay_seconds counts a stall of the isolate", async () => {
  await using server = await startTestServer();
  const over100ms = async () => {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    const total = Number(/^event_loop_delay_seconds_count (\d+)$/m.exec(text)?.[1]);
    const within = Number(/^event_loop_delay_seconds_bucket\{le="0.1"\} (\d+)$/m.exec(text)?.[1]);
    assert.ok(Number.isFinite(total) && Number.isFinite(within), "histogram present");
    return total - within;
  };
  // Scraped at once: the histogram is there before its first tick.
  const before = await over100ms();
  block(250);
  await sleep(60);
  // At least this stall (a busy test machine may add its own).
  assert.ok(await over100ms() >= before + 1);
});

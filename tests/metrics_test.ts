import assert from "node:assert/strict";
import { MetricsRegistry } from "../metrics.ts";

Deno.test("metrics render in Prometheus text format with labels, buckets and escaping", () => {
  const registry = new MetricsRegistry();
  const messages = registry.counter("sync_messages_total", "Messages by direction");
  messages.inc({ direction: "in" });
  messages.inc({ direction: "in" }, 2);
  messages.inc({ direction: "out" });
  const rooms = registry.gauge("sync_rooms_open", "Rooms open", () => [[{}, 3]]);
  assert.equal(rooms.name, "sync_rooms_open");
  const latency = registry.histogram("sync_push_seconds", "Push latency", [0.01, 0.1]);
  latency.observe(0.005);
  latency.observe(0.05);
  latency.observe(5);
  registry.counter("odd_total", "Label escaping").inc({ reason: 'a"b\\c\nd' });

  const text = registry.render();
  assert.match(text, /# TYPE sync_messages_total counter\n/);
  assert.match(text, /sync_messages_total\{direction="in"\} 3\n/);
  assert.match(text, /sync_messages_total\{direction="out"\} 1\n/);
  assert.match(text, /sync_rooms_open 3\n/);
  assert.match(text, /sync_push_seconds_bucket\{le="0.01"\} 1\n/);
  assert.match(text, /sync_push_seconds_bucket\{le="0.1"\} 2\n/);
  assert.match(text, /sync_push_seconds_bucket\{le="\+Inf"\} 3\n/);
  assert.match(text, /sync_push_seconds_sum 5.055\n/);
  assert.match(text, /sync_push_seconds_count 3\n/);
  assert.match(text, /odd_total\{reason="a\\"b\\\\c\\nd"\} 1\n/);
});

Deno.test("registering a name twice returns the same metric; a different type is an error", () => {
  const registry = new MetricsRegistry();
  const a = registry.counter("x_total", "x");
  a.inc();
  assert.equal(registry.counter("x_total", "x").get(), 1);
  assert.throws(() => registry.gauge("x_total", "x"), /already registered as a counter/);
});

import assert from "node:assert/strict";
import { testConfig } from "../config.ts";
import { startTestServer } from "./helpers/server.ts";
import { openRaw } from "./helpers/raw_socket.ts";

Deno.test("GET /metrics: counters move with traffic; gauges show open sockets", async () => {
  await using server = await startTestServer();
  const scrape = async () => await (await fetch(`${server.url}/metrics`)).text();
  const before = await scrape();
  assert.match(before, /# TYPE http_requests_total counter/);
  for (let i = 0; i < 3; i++) await (await fetch(`${server.url}/health`)).body?.cancel();
  await (await fetch(`${server.url}/no/such/thing`)).body?.cancel();
  const socket = await openRaw(`${server.wsUrl}/r/metrics-room`);
  const after = await scrape();
  assert.match(after, /http_requests_total\{method="GET",route="\/health",status="200"\} 3\n/);
  assert.match(after, /http_requests_total\{method="GET",route="unmatched",status="404"\} 1\n/);
  assert.match(after, /http_request_duration_seconds_count\{route="\/health"\} 3\n/);
  assert.match(after, /sync_open_sockets 1\n/);
  await socket.close();
});

Deno.test("GET /metrics with METRICS_TOKEN requires the bearer token", async () => {
  const token = "a-long-metrics-token-0123456789";
  await using server = await startTestServer({ config: { ...testConfig(), metricsToken: token } });
  const refused = await fetch(`${server.url}/metrics`);
  assert.equal(refused.status, 401);
  assert.equal((await refused.json()).error.code, "unauthorized");
  const wrong = await fetch(`${server.url}/metrics`, { headers: { Authorization: "Bearer nope" } });
  assert.equal(wrong.status, 401);
  await wrong.body?.cancel();
  const ok = await fetch(`${server.url}/metrics`, {
    headers: { Authorization: `Bearer ${token}` },
  });
  assert.equal(ok.status, 200);
  assert.equal(ok.headers.get("content-type"), "text/plain; version=0.0.4");
  await ok.body?.cancel();
});

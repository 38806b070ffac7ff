import assert from "node:assert/strict";
import { openPostgres } from "../db/postgres.ts";
import { startTestServer } from "./helpers/server.ts";

Deno.test("GET /health is 200 when KV and the database answer", async () => {
  await using server = await startTestServer();
  const response = await fetch(`${server.url}/health`);
  assert.equal(response.status, 200);
  const body = await response.json();
  assert.equal(body.status, "ok");
  assert.equal(body.checks.kv.ok, true);
  assert.equal(body.checks.db.ok, true);
});

Deno.test("GET /health is 503 naming the database when it is unreachable", async () => {
  // Nothing listens on port 1: every connection attempt is refused.
  const unreachable = openPostgres({ url: "postgres://nobody@127.0.0.1:1/none", poolSize: 1 });
  try {
    await using server = await startTestServer({ database: unreachable });
    const response = await fetch(`${server.url}/health`);
    assert.equal(response.status, 503);
    const body = await response.json();
    assert.equal(body.status, "unavailable");
    assert.deepEqual(body.failing, ["db"]);
    assert.equal(body.checks.kv.ok, true);
    assert.equal(typeof body.checks.db.error, "string");
  } finally {
    await unreachable.close();
  }
});

Deno.test("GET /health is 503 naming KV when it is closed", async () => {
  const kv = await Deno.openKv(":memory:");
  await using server = await startTestServer({ kv });
  kv.close();
  const response = await fetch(`${server.url}/health`);
  assert.equal(response.status, 503);
  const body = await response.json();
  assert.deepEqual(body.failing, ["kv"]);
});

Deno.test("unknown routes get a JSON 404 with a request id", async () => {
  await using server = await startTestServer();
  const response = await fetch(`${server.url}/no/such/route`);
  assert.equal(response.status, 404);
  const body = await response.json();
  assert.equal(body.error.code, "not_found");
  assert.match(body.requestId, /^[0-9a-f-]{36}$/);
  assert.equal(response.headers.get("x-request-id"), body.requestId);
});

Deno.test("GET /version names the package and the database engine", async () => {
  await using server = await startTestServer();
  const body = await (await fetch(`${server.url}/version`)).json();
  assert.equal(body.name, "@deno-sync/server");
  assert.match(body.version, /^\d+\.\d+\.\d+/);
  assert.equal(body.database, server.deps.database.kind);
});

import assert from "node:assert/strict";
import { testConfig } from "../config.ts";
import { createLogger } from "../log.ts";
import { createApp } from "../routes/app.ts";
import { HttpError } from "../routes/errors.ts";
import { Lifecycle } from "../routes/lifecycle.ts";
import { openTestDatabase } from "./helpers/db.ts";
import "./helpers/tldraw_settle.ts";

async function appWithLog() {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger("debug", (line) => lines.push(JSON.parse(line)));
  const kv = await Deno.openKv(":memory:");
  const database = await openTestDatabase();
  const lifecycle = new Lifecycle();
  const app = createApp({ config: testConfig(), kv, database, log, lifecycle });
  app.get("/boom", () => {
    throw new Error("secret internal detail");
  });
  app.get("/teapot", () => {
    throw new HttpError("forbidden", "Not yours", { fileId: "f1" });
  });
  return {
    app,
    lines,
    async [Symbol.asyncDispose]() {
      // As the server does: stop the engines (the change feed's listener) before closing storage.
      await lifecycle.drain();
      kv.close();
      await database.close();
    },
  };
}

Deno.test("unexpected errors become a JSON 500 without internals; the log has them with the request id", async () => {
  await using t = await appWithLog();
  const response = await t.app.request("/boom?token=abc");
  assert.equal(response.status, 500);
  const text = await response.text();
  assert.doesNotMatch(text, /secret internal detail/);
  const body = JSON.parse(text);
  assert.equal(body.error.code, "internal_error");
  const logged = t.lines.find((l) => l.msg === "unhandled error");
  assert.ok(logged);
  assert.equal(logged.requestId, body.requestId);
  assert.match(JSON.stringify(logged.error), /secret internal detail/);
  const request = t.lines.find((l) => l.msg === "request");
  assert.equal(request?.path, "/boom");
  assert.equal(request?.status, 500);
  // Query strings (which may hold tokens) are not logged.
  assert.doesNotMatch(JSON.stringify(t.lines), /token=abc/);
});

Deno.test("HttpError keeps its status, code, message and details", async () => {
  await using t = await appWithLog();
  const response = await t.app.request("/teapot");
  assert.equal(response.status, 403);
  const body = await response.json();
  assert.deepEqual(body.error, {
    code: "forbidden",
    message: "Not yours",
    details: { fileId: "f1" },
  });
});

Deno.test("CORS headers are sent for app routes", async () => {
  await using t = await appWithLog();
  const response = await t.app.request("/app/anything", {
    method: "OPTIONS",
    headers: { Origin: "https://whiteboard.example", "Access-Control-Request-Method": "POST" },
  });
  assert.equal(response.headers.get("access-control-allow-origin"), "*");
  await response.body?.cancel();
});

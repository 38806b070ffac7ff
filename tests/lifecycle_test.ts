import assert from "node:assert/strict";
import { CLOSE_CODE_SERVICE_RESTART, Lifecycle } from "../routes/lifecycle.ts";
import { startTestServer } from "./helpers/server.ts";

Deno.test("drain runs hooks first, then closes tracked sockets with 1012 (retryable)", async () => {
  const lifecycle = new Lifecycle();
  const order: string[] = [];
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    lifecycle.trackSocket(socket);
    socket.onopen = () => order.push("server socket open");
    return response;
  });
  lifecycle.onDrain(() => {
    order.push("hook");
  });
  const failing = lifecycle.onDrain(() => {
    throw new Error("boom");
  });
  failing(); // removed hooks do not run
  const client = new WebSocket(`ws://127.0.0.1:${server.addr.port}`);
  await new Promise((resolve) => (client.onopen = resolve));
  while (lifecycle.openSockets === 0 || !order.includes("server socket open")) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const closed = new Promise<CloseEvent>((resolve) => (client.onclose = resolve));
  const errors: unknown[] = [];
  await lifecycle.drain((error) => errors.push(error));
  const event = await closed;
  assert.equal(event.code, CLOSE_CODE_SERVICE_RESTART);
  assert.equal(event.reason, "server restarting");
  assert.deepEqual(order, ["server socket open", "hook"]);
  assert.deepEqual(errors, []);
  assert.equal(lifecycle.draining, true);
  await server.shutdown();
});

Deno.test("while draining, requests get 503 with Retry-After and a JSON body", async () => {
  await using server = await startTestServer();
  await server.deps.lifecycle.drain();
  const response = await fetch(`${server.url}/health`);
  assert.equal(response.status, 503);
  assert.equal(response.headers.get("retry-after"), "1");
  const body = await response.json();
  assert.equal(body.error.code, "unavailable");
});

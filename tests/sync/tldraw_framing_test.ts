/**
 * Raw-socket tests of framing: chunk reassembly, malformed frames, unknown messages, size limits
 * (spec 1.2, 9.3, invariant 5).
 */
import assert from "node:assert/strict";
import * as syncCore from "@tldraw/sync-core";
import { testConfig } from "../../config.ts";
import { connectRaw, geoShape } from "../helpers/raw_socket.ts";
import { startTestServer } from "../helpers/server.ts";

// The client's own splitter (exported at runtime, stripped from the published types).
const { chunk } = syncCore as unknown as { chunk(message: string): string[] };

function bigTextShape(id: string, chars: number) {
  const text = "lorem ipsum ".repeat(Math.ceil(chars / 12)).slice(0, chars);
  const shape = geoShape(id);
  (shape.props as Record<string, unknown>).richText = {
    type: "doc",
    content: [{ type: "paragraph", content: [{ type: "text", text }] }],
  };
  return shape;
}

Deno.test("a chunked push (600,000 chars, 3 frames) is reassembled, stored and broadcast", async () => {
  await using server = await startTestServer();
  const a = await connectRaw(`${server.wsUrl}/r/chunks?sessionId=a`);
  const b = await connectRaw(`${server.wsUrl}/r/chunks?sessionId=b`);
  await using _a = a.socket;
  await using _b = b.socket;
  const shape = bigTextShape("shape:big", 600_000);
  const frames = chunk(
    JSON.stringify({ type: "push", clientClock: 0, diff: { "shape:big": ["put", shape] } }),
  );
  assert.equal(frames.length, 3);
  assert.match(frames[0]!, /^2_/);
  for (const frame of frames) a.socket.send(frame);
  const result = await a.socket.waitForEvent((e) => e.type === "push_result", 10_000);
  assert.equal(result.action, "commit");
  const patch = await b.socket.waitForEvent((e) => e.type === "patch", 10_000);
  assert.deepEqual(patch.diff["shape:big"], ["put", shape]);
  // A late joiner gets the large record back from KV intact.
  const late = await connectRaw(`${server.wsUrl}/r/chunks?sessionId=late`);
  await using _l = late.socket;
  assert.deepEqual(late.reply.diff["shape:big"], ["put", shape]);
});

Deno.test("chunks out of order close the socket without a code", async () => {
  await using server = await startTestServer();
  const { socket } = await connectRaw(`${server.wsUrl}/r/chunks2?sessionId=a`);
  await using _ = socket;
  socket.send('2_{"type":');
  socket.send('0_"ping"}');
  assert.equal((await socket.closed).code, 1005);
});

Deno.test("malformed JSON is 4099 UNKNOWN_ERROR for that session only", async () => {
  await using server = await startTestServer();
  const bad = await connectRaw(`${server.wsUrl}/r/json?sessionId=bad`);
  const good = await connectRaw(`${server.wsUrl}/r/json?sessionId=good`);
  await using _b = bad.socket;
  await using _g = good.socket;
  bad.socket.send("{not json");
  assert.deepEqual(await bad.socket.closed, { code: 4099, reason: "UNKNOWN_ERROR" });
  good.socket.send({ type: "ping" });
  await good.socket.waitFor((f) => f.type === "pong");
});

Deno.test("an unknown message type is 4099 UNKNOWN_ERROR", async () => {
  await using server = await startTestServer();
  const { socket } = await connectRaw(`${server.wsUrl}/r/unknown?sessionId=a`);
  await using _ = socket;
  socket.send({ type: "custom", data: {} });
  assert.deepEqual(await socket.closed, { code: 4099, reason: "UNKNOWN_ERROR" });
});

Deno.test("a message above MAX_MESSAGE_BYTES is 4099 MESSAGE_TOO_LARGE and stores nothing", async () => {
  const limits = { ...testConfig().limits, maxMessageBytes: 100_000 };
  await using server = await startTestServer({ config: { limits } });
  const { socket } = await connectRaw(`${server.wsUrl}/r/big?sessionId=a`);
  await using _ = socket;
  socket.send({
    type: "push",
    clientClock: 0,
    diff: { "shape:x": ["put", bigTextShape("shape:x", 150_000)] },
  });
  assert.deepEqual(await socket.closed, { code: 4099, reason: "MESSAGE_TOO_LARGE" });
  const late = await connectRaw(`${server.wsUrl}/r/big?sessionId=b`);
  await using _l = late.socket;
  assert.equal(late.reply.serverClock, 0);
});

Deno.test("a push that would exceed MAX_ROOM_BYTES is 4099 ROOM_TOO_LARGE", async () => {
  const limits = { ...testConfig().limits, maxRoomBytes: 20_000 };
  await using server = await startTestServer({ config: { limits } });
  const { socket } = await connectRaw(`${server.wsUrl}/r/full?sessionId=a`);
  await using _ = socket;
  socket.send({
    type: "push",
    clientClock: 0,
    diff: { "shape:x": ["put", bigTextShape("shape:x", 30_000)] },
  });
  assert.deepEqual(await socket.closed, { code: 4099, reason: "ROOM_TOO_LARGE" });
});

/**
 * Raw-socket tests of the connect handshake and room admission (spec section 4, 9.3).
 */
import assert from "node:assert/strict";
import {
  connectRaw,
  connectRequest,
  currentSchema,
  geoShape,
  openRaw,
} from "../helpers/raw_socket.ts";
import { startTestServer } from "../helpers/server.ts";

Deno.test("connect on a new room: wipe_all with the default document and page", async () => {
  await using server = await startTestServer();
  const { socket, reply } = await connectRaw(`${server.wsUrl}/r/room1?sessionId=s1`);
  await using _ = socket;
  assert.equal(reply.hydrationType, "wipe_all");
  assert.equal(reply.protocolVersion, 8);
  assert.equal(reply.serverClock, 0);
  assert.equal(reply.isReadonly, false);
  assert.deepEqual(Object.keys(reply.diff).sort(), ["document:document", "page:page"]);
  assert.deepEqual(reply.schema, currentSchema);
});

for (
  const [version, reason] of [
    [4, "CLIENT_TOO_OLD"],
    [null, "CLIENT_TOO_OLD"],
    [9, "SERVER_TOO_OLD"],
  ] as const
) {
  Deno.test(`protocol version ${version} is closed with 4099 ${reason}`, async () => {
    await using server = await startTestServer();
    await using socket = await openRaw(`${server.wsUrl}/r/room1?sessionId=s1`);
    socket.send(connectRequest({ protocolVersion: version }));
    assert.deepEqual(await socket.closed, { code: 4099, reason });
  });
}

Deno.test("protocol 7 is accepted (and answered as 8)", async () => {
  await using server = await startTestServer();
  const { socket, reply } = await connectRaw(`${server.wsUrl}/r/room1?sessionId=s1`, {
    protocolVersion: 7,
  });
  await using _ = socket;
  assert.equal(reply.protocolVersion, 8);
});

Deno.test("a schema newer than the server's is SERVER_TOO_OLD; missing schema CLIENT_TOO_OLD", async () => {
  await using server = await startTestServer();
  const newer = structuredClone(currentSchema) as { sequences: Record<string, number> };
  newer.sequences["com.tldraw.shape.geo"] = 999;
  {
    await using socket = await openRaw(`${server.wsUrl}/r/room1?sessionId=s1`);
    socket.send(connectRequest({ schema: newer }));
    assert.deepEqual(await socket.closed, { code: 4099, reason: "SERVER_TOO_OLD" });
  }
  {
    await using socket = await openRaw(`${server.wsUrl}/r/room1?sessionId=s2`);
    socket.send(connectRequest({ schema: null }));
    assert.deepEqual(await socket.closed, { code: 4099, reason: "CLIENT_TOO_OLD" });
  }
});

Deno.test("an older client schema is migrated: records down on the way out, up on the way in", async () => {
  await using server = await startTestServer();
  const url = `${server.wsUrl}/r/room1`;
  const current = await connectRaw(`${url}?sessionId=new`);
  await using _current = current.socket;
  current.socket.send({
    type: "push",
    clientClock: 0,
    diff: { "shape:a": ["put", geoShape("shape:a")] },
  });
  await current.socket.waitForEvent((e) => e.type === "push_result");

  const older = structuredClone(currentSchema) as { sequences: Record<string, number> };
  older.sequences["com.tldraw.shape.geo"] = 11; // before flipX / flipY
  const old = await connectRaw(`${url}?sessionId=old`, { schema: older });
  await using _old = old.socket;
  const shape = old.reply.diff["shape:a"][1];
  assert.equal("flipX" in shape.props, false);
  assert.equal(shape.props.w, 100);

  // The old client's put (without flip props) is migrated up before validation and storage.
  const oldShape = geoShape("shape:b");
  delete (oldShape.props as Record<string, unknown>).flipX;
  delete (oldShape.props as Record<string, unknown>).flipY;
  old.socket.send({ type: "push", clientClock: 0, diff: { "shape:b": ["put", oldShape] } });
  const result = await old.socket.waitForEvent((e) => e.type === "push_result");
  assert.equal(result.serverClock, 2);
  const patch = await current.socket.waitForEvent((e) => e.type === "patch" && e.diff["shape:b"]);
  assert.equal(patch.diff["shape:b"][1].props.flipX, false);
});

Deno.test("a bad room id is accepted then closed with 4099 NOT_FOUND", async () => {
  await using server = await startTestServer();
  await using socket = await openRaw(`${server.wsUrl}/r/${"x".repeat(200)}?sessionId=s1`);
  assert.deepEqual(await socket.closed, { code: 4099, reason: "NOT_FOUND" });
});

Deno.test("a plain GET on a room route is a JSON 400", async () => {
  await using server = await startTestServer();
  const response = await fetch(`${server.url}/r/room1`);
  assert.equal(response.status, 400);
  const body = await response.json();
  assert.equal(body.error.code, "bad_request");
});

Deno.test("reconnect with the current clock is wipe_presence without document ops", async () => {
  await using server = await startTestServer();
  const first = await connectRaw(`${server.wsUrl}/r/room1?sessionId=s1`);
  await first.socket.close();
  const { socket, reply } = await connectRaw(`${server.wsUrl}/r/room1?sessionId=s1`, {
    lastServerClock: first.reply.serverClock,
  });
  await using _ = socket;
  assert.equal(reply.hydrationType, "wipe_presence");
  assert.deepEqual(reply.diff, {});
  // A clock from the future means the server lost state: wipe_all.
  const future = await connectRaw(`${server.wsUrl}/r/room1?sessionId=s3`, { lastServerClock: 1e9 });
  await using __ = future.socket;
  assert.equal(future.reply.hydrationType, "wipe_all");
});

Deno.test("the 51st session (here: 3rd with a limit of 2) is closed with ROOM_FULL", async () => {
  await using server = await startTestServer({
    config: {
      limits: { ...(await import("../../config.ts")).testConfig().limits, maxSessionsPerRoom: 2 },
    },
  });
  const a = await connectRaw(`${server.wsUrl}/r/full?sessionId=a`);
  const b = await connectRaw(`${server.wsUrl}/r/full?sessionId=b`);
  await using _a = a.socket;
  await using _b = b.socket;
  await using c = await openRaw(`${server.wsUrl}/r/full?sessionId=c`);
  assert.deepEqual(await c.closed, { code: 4099, reason: "ROOM_FULL" });
  // The same session id reconnecting is not counted twice.
  const again = await connectRaw(`${server.wsUrl}/r/full?sessionId=a`);
  await using _again = again.socket;
  assert.equal(again.reply.type, "connect");
});

Deno.test("protocol 6 clients get a legacy incompatibility_error instead of a 4099 close", async () => {
  await using server = await startTestServer();
  await using socket = await openRaw(`${server.wsUrl}/r/room1?sessionId=s1`);
  socket.send(connectRequest({ protocolVersion: 6, schema: null }));
  const frame = await socket.waitFor((f) => f.type === "incompatibility_error");
  assert.equal(frame.reason, "clientTooOld");
  assert.equal((await socket.closed).code, 1005);
});

Deno.test("binary frames are decoded as UTF-8 text", async () => {
  await using server = await startTestServer();
  const { socket } = await connectRaw(`${server.wsUrl}/r/room1?sessionId=s1`);
  await using _ = socket;
  socket.ws.send(new TextEncoder().encode(JSON.stringify({ type: "ping" })));
  await socket.waitFor((f) => f.type === "pong");
});

Deno.test("shutdown closes room sockets with 1012 and leaves nothing running", async () => {
  await using server = await startTestServer();
  const { socket } = await connectRaw(`${server.wsUrl}/r/room1?sessionId=s1`);
  // What main.ts does on SIGTERM: drain (room commits finish, sockets get 1012), then shut down.
  await server.deps.lifecycle.drain();
  assert.deepEqual(await socket.closed, { code: 1012, reason: "server restarting" });
});

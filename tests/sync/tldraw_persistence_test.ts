/**
 * Persistence through Deno KV: large rooms and large records survive a server restart.
 */
import assert from "node:assert/strict";
import * as syncCore from "@tldraw/sync-core";
import { connectRaw, geoShape } from "../helpers/raw_socket.ts";
import { startTestServer } from "../helpers/server.ts";

const { chunk } = syncCore as unknown as { chunk(message: string): string[] };

Deno.test("a 5,000-shape room with a 200 KB text shape round-trips through KV and a restart", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const diff: Record<string, unknown> = {};
    for (let i = 0; i < 5_000; i++) {
      const id = `shape:s${i}`;
      diff[id] = ["put", geoShape(id, { x: i })];
    }
    const big = geoShape("shape:big");
    (big.props as Record<string, unknown>).richText = {
      type: "doc",
      content: [{ type: "paragraph", content: [{ type: "text", text: "é".repeat(200_000) }] }],
    };
    diff["shape:big"] = ["put", big];
    let clock: number;
    {
      await using server = await startTestServer({ kv });
      const { socket } = await connectRaw(`${server.wsUrl}/r/large?sessionId=a`);
      await using _ = socket;
      for (const frame of chunk(JSON.stringify({ type: "push", clientClock: 0, diff }))) {
        socket.send(frame);
      }
      const result = await socket.waitForEvent((e) => e.type === "push_result", 30_000);
      assert.equal(result.action, "commit");
      clock = result.serverClock;
    }
    // A new server process on the same KV: everything acknowledged is there.
    await using server = await startTestServer({ kv });
    const { socket, reply } = await connectRaw(`${server.wsUrl}/r/large?sessionId=b`, {
      lastServerClock: -1,
    });
    await using _ = socket;
    assert.equal(reply.hydrationType, "wipe_all");
    assert.equal(reply.serverClock, clock);
    assert.equal(Object.keys(reply.diff).length, 5_003);
    assert.deepEqual(reply.diff["shape:big"], ["put", big]);
    assert.deepEqual(reply.diff["shape:s4999"], diff["shape:s4999"]);
  } finally {
    kv.close();
  }
});

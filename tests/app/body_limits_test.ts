/**
 * Request bodies are read only up to their route's limit: a chunked body far over it (no
 * `Content-Length`) is cancelled at the limit and answered 413, so the bytes read and the
 * server's memory stay bounded; a declared `Content-Length` over it is refused before reading.
 */
import assert from "node:assert/strict";
import { testConfig } from "../../config.ts";
import { startAuthServer } from "../helpers/user_sync_client.ts";

const MiB = 1024 * 1024;

/** A body of `total` bytes made on demand (one reused chunk), counting what the server pulled. */
function countingBody(total: number, chunkBytes = 64 * 1024) {
  const chunk = new Uint8Array(chunkBytes).fill(0x20); // spaces: "JSON" until the very end
  let pulled = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (pulled >= total) {
        controller.close();
        return;
      }
      pulled += chunk.byteLength;
      controller.enqueue(chunk);
    },
  });
  return { stream, pulled: () => pulled };
}

/** POSTs `total` chunked bytes; the status (or `null` when the server cut the upload off). */
async function postChunked(
  url: string,
  total: number,
  headers: Record<string, string> = {},
): Promise<{ status: number | null; pulled: number }> {
  const body = countingBody(total);
  try {
    const response = await fetch(url, {
      method: "POST",
      body: body.stream,
      headers: { "content-type": "application/json", ...headers },
      // @ts-ignore: Deno's fetch streams request bodies with `duplex: "half"`.
      duplex: "half",
    });
    await response.body?.cancel();
    return { status: response.status, pulled: body.pulled() };
  } catch {
    return { status: null, pulled: body.pulled() };
  }
}

Deno.test("chunked bodies far over the limit are cut off at it with 413, on every route with a body", async () => {
  const base = testConfig();
  await using server = await startAuthServer({
    // Small limits: 1 MiB rooms (snapshots and .tldr take 2 MiB), 1 MiB messages and uploads.
    limits: { maxRoomBytes: MiB, maxMessageBytes: MiB },
    auth: { adminToken: "admin-token-0123456789" },
    config: {
      content: { ...base.content, maxUploadBytes: MiB },
      // Anonymous LiveStore clients get as far as reading the body.
      livestore: { ...base.livestore, anonymous: true },
    },
  });
  const token = await server.token("alice");
  const bearer = { authorization: `Bearer ${token}` };
  const routes: [string, string, Record<string, string>, number][] = [
    ["POST /snapshots", "/snapshots", {}, 2 * MiB],
    ["POST /app/tldr", "/app/tldr", bearer, 2 * MiB],
    ["POST /app/files", "/app/files", bearer, 16 * 1024],
    ["POST /auth/dev/token", "/auth/dev/token", {}, 16 * 1024],
    ["LiveStore HTTP", "/livestore?storeId=s1&transport=http", {}, MiB],
    [
      "POST /admin/rooms/:roomId/close",
      "/admin/rooms/r1/close",
      { authorization: "Bearer admin-token-0123456789" },
      16 * 1024,
    ],
  ];
  for (const [label, path, headers, limit] of routes) {
    const { status, pulled } = await postChunked(`${server.url}${path}`, 64 * MiB, headers);
    // Refused, and what was read is about the limit, not the 64 MiB sent (sockets buffer a few MiB).
    assert.ok(status === 413 || status === null, `${label}: ${status}`);
    assert.ok(pulled < limit + 8 * MiB, `${label}: ${pulled} bytes read for a ${limit} limit`);
  }
  // Uploads (image bytes, the same rule).
  const upload = await postChunked(
    `${server.url}/app/uploads/big.png?fileId=nope`,
    64 * MiB,
    { ...bearer, "content-type": "image/png" },
  );
  assert.notEqual(upload.status, 200);
  assert.ok(upload.pulled < 9 * MiB, `upload: ${upload.pulled}`);

  // A declared length over the limit is refused before the body is read at all.
  const declared = await fetch(`${server.url}/snapshots`, {
    method: "POST",
    headers: { "content-type": "application/json", "content-length": String(3 * MiB) },
    body: "x".repeat(3 * MiB),
  });
  assert.equal(declared.status, 413);
  assert.equal((await declared.json()).error.code, "payload_too_large");
});

Deno.test("a 256 MiB chunked snapshot leaves the server's memory where it was", async () => {
  await using server = await startAuthServer({ limits: { maxRoomBytes: MiB } });
  // Warm up the route (first-request allocations are not what is measured).
  await postChunked(`${server.url}/snapshots`, 4 * MiB);
  const before = Deno.memoryUsage().rss;
  const { status, pulled } = await postChunked(`${server.url}/snapshots`, 256 * MiB);
  const grown = Deno.memoryUsage().rss - before;
  assert.ok(status === 413 || status === null, String(status));
  assert.ok(pulled < 16 * MiB, `read ${pulled} bytes`);
  // Reading it whole grew a server by ~500 MB; the limit is 2 MiB.
  assert.ok(grown < 64 * MiB, `RSS grew by ${Math.round(grown / MiB)} MiB`);
});

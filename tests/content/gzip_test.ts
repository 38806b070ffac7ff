import assert from "node:assert/strict";
import { gzipInThread, GzipWorker } from "../../sync/content/gzip.ts";

async function gunzip(bytes: Uint8Array): Promise<string> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream()
    .pipeThrough(new DecompressionStream("gzip"));
  return await new Response(stream).text();
}

Deno.test("gzip worker: large inputs compress off the thread, small ones in place; both round-trip", async () => {
  const worker = new GzipWorker();
  try {
    const large = JSON.stringify(
      Array.from({ length: 3_000 }, (_, i) => ({ id: `shape:${i}`, x: i * 3, text: `note ${i}` })),
    );
    const small = '{"id":"shape:a"}';
    const encoder = new TextEncoder();
    // Several at once: replies are matched to their requests.
    const [a, b, c] = await Promise.all([
      worker.gzip(encoder.encode(large)),
      worker.gzip(encoder.encode(small)),
      worker.gzip(encoder.encode(large + " ")),
    ]);
    assert.equal(worker.offloaded, 2, "the two large inputs went to the worker");
    assert.equal(await gunzip(a), large);
    assert.equal(await gunzip(b), small);
    assert.equal(await gunzip(c), large + " ");
    assert.ok(a.byteLength < large.length / 3, `${a.byteLength} bytes`);
  } finally {
    worker.close();
  }
  // Closed: still works, in place.
  const after = await worker.gzip(new TextEncoder().encode("x".repeat(100_000)));
  assert.equal(await gunzip(after), "x".repeat(100_000));
  assert.equal(await gunzip(await gzipInThread(new TextEncoder().encode("hi"))), "hi");
});

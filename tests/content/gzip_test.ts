import assert from "node:assert/strict";
import { CHUNK_CHARS, gzipText, GzipWorker } from "../../sync/content/gzip.ts";

async function gunzip(bytes: Uint8Array): Promise<string> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream()
    .pipeThrough(new DecompressionStream("gzip"));
  return await new Response(stream).text();
}

/** A document-like text in many parts (non-ASCII too: sizes are UTF-8 bytes). */
function partsOf(records: number): string[] {
  return Array.from(
    { length: records },
    (_, i) => JSON.stringify({ id: `shape:${i}`, x: i * 3, text: `note ${i} — ü` }) + ",",
  );
}

const utf8Size = (text: string) => new TextEncoder().encode(text).byteLength;

Deno.test("gzip worker: large texts compress off the thread, small ones in place; both round-trip", async () => {
  const worker = new GzipWorker();
  try {
    const large = partsOf(20_000);
    const small = ['{"id":', '"shape:a"}'];
    // Several at once: replies are matched to their requests.
    const [a, b, c] = await Promise.all([
      worker.gzipText(large),
      worker.gzipText(small),
      worker.gzipText([...large, " "]),
    ]);
    assert.equal(worker.offloaded, 2, "the two large texts went to the worker");
    assert.equal(await gunzip(a.data), large.join(""));
    assert.equal(a.size, utf8Size(large.join("")));
    assert.equal(await gunzip(b.data), small.join(""));
    assert.equal(await gunzip(c.data), large.join("") + " ");
    assert.ok(a.data.byteLength < a.size / 3, `${a.data.byteLength} bytes`);
  } finally {
    worker.close();
  }
  // Closed: still works, in place.
  const after = await worker.gzipText(["x".repeat(100_000)]);
  assert.equal(await gunzip(after.data), "x".repeat(100_000));
  assert.equal(worker.offloaded, 2);
  const empty = await gzipText([]);
  assert.equal(await gunzip(empty.data), "");
  assert.equal(empty.size, 0);
});

Deno.test("gzip: a big text is encoded a chunk per macrotask turn, in place and through the worker", async () => {
  const parts = partsOf(40_000);
  const chunks = Math.ceil(parts.join("").length / CHUNK_CHARS);
  assert.ok(chunks >= 6, `${chunks} chunks`);
  const worker = new GzipWorker();
  try {
    for (const compress of [gzipText, (p: string[]) => worker.gzipText(p)]) {
      // Other macrotasks (sockets, timers) run between the chunks: a timer chain keeps ticking.
      let ticks = 0;
      let running = true;
      const tick = () => {
        ticks++;
        if (running) setTimeout(tick, 0);
      };
      setTimeout(tick, 0);
      const compressed = await compress(parts);
      running = false;
      await new Promise((resolve) => setTimeout(resolve, 0));
      assert.ok(ticks >= chunks - 2, `${ticks} timer turns during ${chunks} chunks`);
      assert.equal(await gunzip(compressed.data), parts.join(""));
    }
    assert.equal(worker.offloaded, 1);
  } finally {
    worker.close();
  }
});

Deno.test("gzip worker: a job whose worker stops midway is compressed again in place", async () => {
  const worker = new GzipWorker();
  const parts = partsOf(40_000);
  const job = worker.gzipText(parts);
  // Some chunks were sent; then the worker goes.
  await new Promise((resolve) => setTimeout(resolve, 0));
  worker.close();
  const compressed = await job;
  assert.equal(await gunzip(compressed.data), parts.join(""));
  assert.equal(compressed.size, utf8Size(parts.join("")));
  assert.equal(worker.offloaded, 0);
});

Deno.test("gzip worker: a text whose parts fail midway rejects, and the worker serves the next one", async () => {
  const worker = new GzipWorker();
  try {
    const failing = {
      *[Symbol.iterator]() {
        yield* partsOf(20_000);
        throw new Error("record unreadable");
      },
    };
    await assert.rejects(worker.gzipText(failing), /record unreadable/);
    const parts = partsOf(20_000);
    const compressed = await worker.gzipText(parts);
    assert.equal(await gunzip(compressed.data), parts.join(""));
    assert.equal(worker.offloaded, 1);
  } finally {
    worker.close();
  }
});

/**
 * One contract for every BlobStore: the local filesystem store and the S3 store, the latter against a
 * real S3-compatible server (s3rver from npm) started by the test on loopback.
 */
import assert from "node:assert/strict";
import type { BlobStore } from "../../sync/assets/blob_store.ts";
import { FsBlobStore } from "../../sync/assets/fs_blob_store.ts";
import { S3BlobStore } from "../../sync/assets/s3_blob_store.ts";
import { startS3Server } from "../helpers/s3_server.ts";

interface Harness extends AsyncDisposable {
  store: BlobStore;
}

const implementations: Record<string, () => Promise<Harness>> = {
  fs: async () => {
    const dir = await Deno.makeTempDir({ prefix: "blob-contract-" });
    return {
      store: new FsBlobStore(dir),
      [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
    };
  },
  s3: async () => {
    const server = await startS3Server("contract");
    return {
      store: new S3BlobStore({
        endpoint: server.endpoint,
        bucket: server.bucket,
        region: "us-east-1",
        // s3rver's built-in credentials.
        accessKeyId: "S3RVER",
        secretAccessKey: "S3RVER",
      }),
      [Symbol.asyncDispose]: () => server[Symbol.asyncDispose](),
    };
  },
};

async function read(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Byte equality without a 300 000-element diff on failure. */
function sameBytes(actual: Uint8Array, expected: Uint8Array, what = "bytes"): void {
  assert.equal(actual.byteLength, expected.byteLength, `${what}: length`);
  const first = actual.findIndex((byte, i) => byte !== expected[i]);
  assert.equal(first, -1, `${what}: first difference at ${first}`);
}

const bytes = (size: number, seed = 0) => {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = (i + seed) % 253;
  return out;
};

for (const [name, open] of Object.entries(implementations)) {
  Deno.test(`BlobStore contract (${name})`, async (t) => {
    await using harness = await open();
    const { store } = harness;

    await t.step("a missing object has no metadata and no bytes", async () => {
      assert.equal(await store.head("missing.png"), null);
      assert.equal(await store.get("missing.png"), null);
      await store.delete("missing.png"); // no-op
    });

    await t.step("put, head and get round-trip bytes, type and a strong ETag", async () => {
      const data = bytes(300_000);
      const info = await store.put("object-1.png", data, "image/png");
      assert.equal(info.size, 300_000);
      assert.equal(info.contentType, "image/png");
      assert.match(info.etag, /^"[^"]+"$/);
      const head = await store.head("object-1.png");
      assert.equal(head?.size, 300_000);
      assert.equal(head?.contentType, "image/png");
      assert.equal(head?.etag, info.etag);
      const object = await store.get("object-1.png");
      assert.ok(object);
      sameBytes(await read(object.body), data);
    });

    await t.step("ranges return exactly the asked bytes", async () => {
      const data = bytes(300_000);
      for (const [start, end] of [[0, 0], [10, 99], [150_000, 299_999], [299_999, 299_999]]) {
        const object = await store.get("object-1.png", { start: start!, end: end! });
        assert.ok(object);
        assert.equal(object.info.size, 300_000);
        sameBytes(await read(object.body), data.slice(start!, end! + 1), `${start}-${end}`);
      }
    });

    await t.step("a put replaces; delete removes", async () => {
      const replaced = await store.put("object-1.png", bytes(10, 7), "image/webp");
      assert.equal(replaced.size, 10);
      const object = await store.get("object-1.png");
      sameBytes(await read(object!.body), bytes(10, 7));
      assert.equal((await store.head("object-1.png"))?.contentType, "image/webp");
      await store.delete("object-1.png");
      assert.equal(await store.head("object-1.png"), null);
    });

    await t.step("names that could escape are refused before any I/O", async () => {
      for (const bad of ["../x", "a/b", "..", ".env", "a\\b", "", "%2e%2e"]) {
        await assert.rejects(() => store.put(bad, bytes(1), "image/png"), TypeError, bad);
        await assert.rejects(() => store.get(bad), TypeError, bad);
      }
    });
  });
}

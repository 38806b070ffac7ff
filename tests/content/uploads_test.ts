/**
 * Assets through the real routes and the local-filesystem blob store: upload limits, the content-type
 * allow-list, traversal attempts, permissions, and downloads with ETag, Range and caching headers.
 */
import assert from "node:assert/strict";
import { startAuthServer } from "../helpers/user_sync_client.ts";
import { api, seedFiles, tempBlobs } from "../helpers/content.ts";
import { TEST_ENGINE } from "../helpers/db.ts";
import { ConfigError, loadConfig, testConfig } from "../../config.ts";
import { S3BlobStore } from "../../sync/assets/s3_blob_store.ts";
import { startS3Server } from "../helpers/s3_server.ts";
import { parseRange } from "../../routes/uploads.ts";
import { connectRaw } from "../helpers/raw_socket.ts";
import { decode, Image } from "imagescript";
import { imageSize } from "../../sync/assets/image_variants.ts";

const engine = `[${TEST_ENGINE}]`;
const png = (size: number) => {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = i % 251;
  return bytes;
};

async function startServer(
  blobs: { blobs: import("../../sync/assets/fs_blob_store.ts").FsBlobStore },
) {
  const base = testConfig();
  return await startAuthServer({
    config: { content: { ...base.content, maxUploadBytes: 64 * 1024 } },
    content: { blobs: blobs.blobs },
  });
}

const upload = (
  server: Parameters<typeof api>[0],
  name: string,
  bytes: Uint8Array,
  options: { as?: string; type?: string; fileId?: string } = {},
) =>
  api(server, `/app/uploads/${name}?fileId=${options.fileId ?? "f1"}`, {
    method: "POST",
    ...(options.as !== undefined ? { as: options.as } : { as: "alice" }),
    body: bytes as Uint8Array<ArrayBuffer>,
    headers: { "content-type": options.type ?? "image/png" },
  });

Deno.test(`${engine} uploads: store, link to file and user, serve with type, ETag and caching`, async () => {
  await using blobs = await tempBlobs();
  await using server = await startServer(blobs);
  await seedFiles(server, {
    f1: { shared: true, sharedLinkType: "edit" },
    f2: { shared: true, sharedLinkType: "view" },
  });
  const bytes = png(10_000);
  const created = await upload(server, "asset-1.png", bytes);
  assert.equal(created.status, 201);
  assert.equal(created.body.size, 10_000);
  const row = await server.deps.database.db.selectFrom("asset").selectAll()
    .where("objectName", "=", "asset-1.png").executeTakeFirstOrThrow();
  assert.deepEqual(row, { objectName: "asset-1.png", fileId: "f1", userId: "alice" });
  // Stored under the blob directory, nowhere else.
  assert.equal((await Deno.stat(`${blobs.dir}/objects/asset-1.png`)).size, 10_000);

  const got = await api(server, "/app/uploads/asset-1.png");
  assert.equal(got.status, 200);
  assert.deepEqual(got.bytes, bytes);
  assert.equal(got.headers.get("content-type"), "image/png");
  assert.equal(got.headers.get("content-length"), "10000");
  assert.equal(got.headers.get("accept-ranges"), "bytes");
  assert.match(got.headers.get("cache-control") ?? "", /max-age=31536000.*immutable/);
  assert.equal(got.headers.get("x-content-type-options"), "nosniff");
  const etag = got.headers.get("etag")!;
  assert.match(etag, /^"[0-9a-f]{32}"$/);
  const cached = await api(server, "/app/uploads/asset-1.png", {
    headers: { "if-none-match": etag },
  });
  assert.equal(cached.status, 304);
  assert.equal(cached.bytes.byteLength, 0);

  // A guest with edit rights may add assets; a view-only guest may not.
  assert.equal((await upload(server, "by-bob.png", png(10), { as: "bob" })).status, 201);
  assert.equal(
    (await upload(server, "view-only.png", png(10), { as: "bob", fileId: "f2" })).status,
    403,
  );
  // Names are never reused.
  assert.equal((await upload(server, "asset-1.png", png(5))).status, 409);
  assert.equal((await api(server, "/app/uploads/missing.png")).status, 404);
});

Deno.test(`${engine} uploads: auth, size limit, content types and traversal attempts are refused`, async () => {
  await using blobs = await tempBlobs();
  await using server = await startServer(blobs);
  await seedFiles(server);
  assert.equal(
    (await api(server, "/app/uploads/a.png?fileId=f1", {
      method: "POST",
      body: png(10),
      headers: { "content-type": "image/png" },
    })).status,
    401,
  );
  const tooBig = await upload(server, "big.png", png(64 * 1024 + 1));
  assert.equal(tooBig.status, 413);
  assert.equal((await upload(server, "limit.png", png(64 * 1024))).status, 201);
  // A chunked body without Content-Length is cut off at the limit too.
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      for (let i = 0; i < 10; i++) controller.enqueue(png(10_000));
      controller.close();
    },
  });
  const chunked = await fetch(`${server.url}/app/uploads/chunked.png?fileId=f1`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${await server.token("alice")}`,
      "content-type": "image/png",
    },
    body: stream,
  });
  await chunked.body?.cancel();
  assert.equal(chunked.status, 413);
  for (const type of ["text/html", "application/javascript", "application/octet-stream", ""]) {
    assert.equal((await upload(server, "x.png", png(10), { type })).status, 415, type);
  }
  assert.equal((await upload(server, "empty.png", new Uint8Array())).status, 400);
  assert.equal((await upload(server, "nofile.png", png(10), { fileId: "nope" })).status, 404);

  const attempts = [
    "..",
    "%2e%2e",
    "..%2F..%2Fetc%2Fpasswd",
    "%2e%2e%2f%2e%2e%2fkv.sqlite3",
    "a%2F..%2F..%2Fescape",
    "a%5C..%5Cescape",
    ".hidden",
    "a..b",
    "%00evil",
    "x".repeat(300),
  ];
  for (const name of attempts) {
    const response = await upload(server, name, png(10));
    assert.ok([400, 404].includes(response.status), `${name}: ${response.status}`);
    assert.ok([400, 404].includes((await api(server, `/app/uploads/${name}`)).status), name);
  }
  // Nothing was written outside the objects directory.
  const written: string[] = [];
  for await (const entry of Deno.readDir(`${blobs.dir}/objects`)) written.push(entry.name);
  assert.deepEqual(written.sort(), ["limit.png"]);
  const top: string[] = [];
  for await (const entry of Deno.readDir(blobs.dir)) top.push(entry.name);
  assert.deepEqual(top.sort(), ["meta", "objects", "tmp"]);
  const rows = await server.deps.database.db.selectFrom("asset").select("objectName").execute();
  assert.deepEqual(rows.map((r) => r.objectName), ["limit.png"]);
});

Deno.test(`${engine} uploads: range requests`, async () => {
  await using blobs = await tempBlobs();
  await using server = await startServer(blobs);
  await seedFiles(server);
  const bytes = png(50_000);
  await upload(server, "video.mp4", bytes, { type: "video/mp4" });
  const range = async (header: string, extra: Record<string, string> = {}) =>
    await api(server, "/app/uploads/video.mp4", { headers: { range: header, ...extra } });

  const middle = await range("bytes=100-199");
  assert.equal(middle.status, 206);
  assert.equal(middle.headers.get("content-range"), "bytes 100-199/50000");
  assert.equal(middle.headers.get("content-length"), "100");
  assert.deepEqual(middle.bytes, bytes.slice(100, 200));
  assert.equal(middle.headers.get("content-type"), "video/mp4");

  const open = await range("bytes=49990-");
  assert.equal(open.status, 206);
  assert.deepEqual(open.bytes, bytes.slice(49_990));
  const suffix = await range("bytes=-10");
  assert.equal(suffix.headers.get("content-range"), "bytes 49990-49999/50000");
  assert.deepEqual(suffix.bytes, bytes.slice(49_990));
  const clamped = await range("bytes=49000-999999");
  assert.equal(clamped.headers.get("content-range"), "bytes 49000-49999/50000");
  assert.equal(clamped.bytes.byteLength, 1_000);

  const beyond = await range("bytes=50000-50010");
  assert.equal(beyond.status, 416);
  assert.equal(beyond.headers.get("content-range"), "bytes */50000");
  // Several ranges or a foreign unit: the whole object (allowed by RFC 9110).
  const multi = await range("bytes=0-1,5-6");
  assert.equal(multi.status, 200);
  assert.equal(multi.bytes.byteLength, 50_000);
  // If-Range with a stale validator: the whole object.
  const stale = await range("bytes=0-9", { "if-range": '"stale"' });
  assert.equal(stale.status, 200);
  const etag = stale.headers.get("etag")!;
  const fresh = await range("bytes=0-9", { "if-range": etag });
  assert.equal(fresh.status, 206);
  assert.deepEqual(fresh.bytes, bytes.slice(0, 10));
});

Deno.test("uploads: parseRange", () => {
  assert.deepEqual(parseRange("bytes=0-0", 10), { start: 0, end: 0 });
  assert.deepEqual(parseRange("bytes=-20", 10), { start: 0, end: 9 });
  assert.equal(parseRange("bytes=10-", 10), "unsatisfiable");
  assert.equal(parseRange("bytes=-0", 10), "unsatisfiable");
  assert.equal(parseRange("bytes=5-2", 10), undefined);
  assert.equal(parseRange("items=0-1", 10), undefined);
  assert.equal(parseRange("bytes=-", 10), undefined);
});

Deno.test(`${engine} uploads: the same routes on the S3 blob store (local S3-compatible server)`, async () => {
  await using s3 = await startS3Server("uploads");
  const blobs = new S3BlobStore({
    endpoint: s3.endpoint,
    bucket: s3.bucket,
    region: "us-east-1",
    accessKeyId: "S3RVER",
    secretAccessKey: "S3RVER",
  });
  await using server = await startAuthServer({ content: { blobs } });
  await seedFiles(server);
  const bytes = png(20_000);
  const created = await upload(server, "on-s3.webp", bytes, { type: "image/webp" });
  assert.equal(created.status, 201);
  const got = await api(server, "/app/uploads/on-s3.webp");
  assert.equal(got.status, 200);
  assert.equal(got.headers.get("content-type"), "image/webp");
  assert.equal(got.bytes.byteLength, 20_000);
  assert.ok(got.bytes.every((byte, i) => byte === bytes[i]));
  const etag = got.headers.get("etag")!;
  assert.equal(
    (await api(server, "/app/uploads/on-s3.webp", { headers: { "if-none-match": etag } })).status,
    304,
  );
  const part = await api(server, "/app/uploads/on-s3.webp", { headers: { range: "bytes=0-0" } });
  assert.equal(part.status, 206);
  assert.deepEqual([...part.bytes], [bytes[0]]);
  assert.equal((await upload(server, "on-s3.webp", png(3), { type: "image/webp" })).status, 409);
});

Deno.test("uploads: BLOB_STORE=s3 needs its endpoint, bucket and credentials", () => {
  assert.throws(
    () => loadConfig({ BLOB_STORE: "s3", S3_BUCKET: "b" }),
    (error: unknown) =>
      error instanceof ConfigError &&
      ["S3_ENDPOINT", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY"].every((v) =>
        error.issues.some((issue) => issue.variable === v)
      ),
  );
  const config = loadConfig({
    BLOB_STORE: "s3",
    S3_ENDPOINT: "http://127.0.0.1:9000",
    S3_BUCKET: "assets",
    S3_ACCESS_KEY_ID: "key",
    S3_SECRET_ACCESS_KEY: "secret",
    MAX_UPLOAD_BYTES: "1000",
  });
  assert.equal(config.content.blobStore.kind, "s3");
  assert.equal(config.content.maxUploadBytes, 1000);
  const local = loadConfig({ DATA_DIR: "/srv/data" });
  assert.deepEqual(local.content.blobStore, { kind: "fs", dir: "/srv/data/blobs" });
  assert.equal(local.content.historyIntervalMs, 8_000);
  assert.throws(() => loadConfig({ BLOB_STORE: "gcs" }), ConfigError);
});

Deno.test(`${engine} uploads to anonymous rooms: the edit link may add, a read-only id may not; limits apply`, async () => {
  await using blobs = await tempBlobs();
  await using server = await startServer(blobs);
  const roomUpload = (roomId: string, name: string, bytes: Uint8Array, type = "image/png") =>
    api(server, `/uploads/${name}?roomId=${encodeURIComponent(roomId)}`, {
      method: "POST",
      body: bytes as Uint8Array<ArrayBuffer>,
      headers: { "content-type": type },
    });
  // No such room yet: nobody has opened it.
  assert.equal((await roomUpload("room-a", "early.png", png(10))).status, 404);
  const { socket } = await connectRaw(`${server.wsUrl}/r/room-a`);
  await using _socket = socket;

  const bytes = png(5_000);
  const created = await roomUpload("room-a", "room-photo.png", bytes);
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.equal(created.body.url, "/app/uploads/room-photo.png");
  const row = await server.deps.database.db.selectFrom("room_asset")
    .select(["objectName", "roomId"]).where("objectName", "=", "room-photo.png")
    .executeTakeFirstOrThrow();
  assert.deepEqual(row, { objectName: "room-photo.png", roomId: "room-a" });
  const got = await api(server, "/app/uploads/room-photo.png");
  assert.equal(got.status, 200);
  assert.deepEqual(got.bytes, bytes);

  // The room's read-only id opens it, but cannot add to it.
  const slug = await api(server, "/readonly-slug/room-a");
  const readonly = await roomUpload(slug.body.slug, "from-viewer.png", png(10));
  assert.equal(readonly.status, 403);
  assert.equal(readonly.body.error.code, "forbidden");
  // Names are unique across file and room uploads; type, size and the room id are checked.
  assert.equal((await roomUpload("room-a", "room-photo.png", png(10))).status, 409);
  assert.equal((await roomUpload("room-a", "page.html", png(10), "text/html")).status, 415);
  assert.equal((await roomUpload("room-a", "big.png", png(64 * 1024 + 1))).status, 413);
  assert.equal((await roomUpload("bad:id", "x.png", png(10))).status, 400);
  assert.equal((await roomUpload("room-a", "..%2Fx.png", png(10))).status, 400);
  // Nothing refused was stored.
  const names = (await server.deps.database.db.selectFrom("room_asset").select("objectName")
    .execute()).map((r) => r.objectName);
  assert.deepEqual(names, ["room-photo.png"]);
});

Deno.test(`${engine} uploads: ?w= serves PNG and JPEG resized to the next width step, cached`, async () => {
  await using blobs = await tempBlobs();
  const base = testConfig();
  await using server = await startAuthServer({
    config: { content: { ...base.content, maxUploadBytes: 4 * 1024 * 1024 } },
    content: { blobs: blobs.blobs },
  });
  await seedFiles(server, { f1: {} });
  // A noisy photo-like image: resizing it really makes it smaller.
  const photo = new Image(900, 600);
  for (let y = 1; y <= 600; y++) {
    for (let x = 1; x <= 900; x++) {
      photo.setPixelAt(x, y, ((x * 7919 + y * 104729) * 2654435761) | 0xff);
    }
  }
  const png = await photo.encode(1);
  const jpeg = await photo.encodeJPEG(90);
  assert.equal((await upload(server, "photo.png", png)).status, 201);
  assert.equal((await upload(server, "photo.jpg", jpeg, { type: "image/jpeg" })).status, 201);

  const small = await api(server, "/app/uploads/photo.png?w=200");
  assert.equal(small.status, 200);
  assert.equal(small.headers.get("content-type"), "image/png");
  const decoded = await decode(small.bytes) as Image;
  assert.equal(decoded.width, 256);
  assert.ok(Math.abs(decoded.height - 600 * 256 / 900) < 1, `height ${decoded.height}`);
  assert.ok(small.bytes.byteLength < png.byteLength);
  const original = await api(server, "/app/uploads/photo.png");
  const etag = small.headers.get("etag")!;
  assert.notEqual(etag, original.headers.get("etag"));
  assert.match(small.headers.get("cache-control") ?? "", /immutable/);
  const again = await api(server, "/app/uploads/photo.png?w=256", {
    headers: { "if-none-match": etag },
  });
  assert.equal(again.status, 304);

  const jpegSmall = await api(server, "/app/uploads/photo.jpg?w=500");
  assert.equal(jpegSmall.headers.get("content-type"), "image/jpeg");
  assert.equal(((await decode(jpegSmall.bytes)) as Image).width, 512);

  // Wider than the image, past the last step, not a width, or a range: the upload as it is.
  for (const query of ["w=1000", "w=5000", "w=abc", "w=0"]) {
    const got = await api(server, `/app/uploads/photo.png?${query}`);
    assert.deepEqual(got.bytes, png, query);
  }
  const ranged = await api(server, "/app/uploads/photo.png?w=200", {
    headers: { range: "bytes=0-9" },
  });
  assert.equal(ranged.status, 206);
});

Deno.test("uploads: image sizes are read from headers, so a huge claimed size is never decoded", () => {
  const header = new Uint8Array(33);
  header.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]);
  new DataView(header.buffer).setUint32(16, 100_000);
  new DataView(header.buffer).setUint32(20, 100_000);
  assert.deepEqual(imageSize(header, "image/png"), { width: 100_000, height: 100_000 });
  assert.equal(imageSize(new Uint8Array([1, 2, 3]), "image/png"), null);
  assert.equal(imageSize(header, "image/gif"), null);
});

/**
 * {@link BlobStore} on an S3-compatible service (AWS S3, R2, MinIO, …), path-style addressing
 * (`<endpoint>/<bucket>/<name>`), requests signed with SigV4 by `aws4fetch`.
 *
 * @module
 */
import { AwsClient } from "aws4fetch";
import {
  type BlobInfo,
  type BlobObject,
  type BlobStore,
  type ByteRange,
  isValidObjectName,
} from "./blob_store.ts";

/** Connection settings of {@link S3BlobStore}. */
export interface S3Options {
  /** e.g. `https://s3.eu-central-1.amazonaws.com` or `http://127.0.0.1:9000`. */
  endpoint: string;
  bucket: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Injectable for tests. */
  fetch?: typeof fetch;
}

/** Thrown when the service answers with an unexpected status. */
export class S3Error extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = "S3Error";
  }
}

/** Blob store on an S3-compatible bucket. */
export class S3BlobStore implements BlobStore {
  readonly #client: AwsClient;
  readonly #base: string;
  readonly #fetch: typeof fetch;

  constructor(options: S3Options) {
    this.#client = new AwsClient({
      accessKeyId: options.accessKeyId,
      secretAccessKey: options.secretAccessKey,
      region: options.region,
      service: "s3",
    });
    this.#base = `${options.endpoint.replace(/\/+$/, "")}/${encodeURIComponent(options.bucket)}`;
    this.#fetch = options.fetch ?? fetch;
  }

  #url(name: string): string {
    if (!isValidObjectName(name)) {
      throw new TypeError(`invalid object name: ${JSON.stringify(name)}`);
    }
    return `${this.#base}/${encodeURIComponent(name)}`;
  }

  async #send(url: string, init: RequestInit): Promise<Response> {
    const signed = await this.#client.sign(url, init);
    return await this.#fetch(signed);
  }

  async put(name: string, bytes: Uint8Array, contentType: string): Promise<BlobInfo> {
    const response = await this.#send(this.#url(name), {
      method: "PUT",
      body: bytes as Uint8Array<ArrayBuffer>,
      headers: { "content-type": contentType },
    });
    await response.body?.cancel();
    if (!response.ok) throw new S3Error(response.status, `S3 PUT ${name}: ${response.status}`);
    const info = await this.head(name);
    if (!info) throw new S3Error(404, `S3 PUT ${name}: object missing after upload`);
    return info;
  }

  async head(name: string): Promise<BlobInfo | null> {
    const response = await this.#send(this.#url(name), { method: "HEAD" });
    await response.body?.cancel();
    if (response.status === 404) return null;
    if (!response.ok) throw new S3Error(response.status, `S3 HEAD ${name}: ${response.status}`);
    return infoFrom(response.headers);
  }

  async get(name: string, range?: ByteRange): Promise<BlobObject | null> {
    const headers: Record<string, string> = {};
    if (range) headers.range = `bytes=${range.start}-${range.end}`;
    const response = await this.#send(this.#url(name), { method: "GET", headers });
    if (response.status === 404) {
      await response.body?.cancel();
      return null;
    }
    if (!response.ok || !response.body) {
      await response.body?.cancel();
      throw new S3Error(response.status, `S3 GET ${name}: ${response.status}`);
    }
    const info = infoFrom(response.headers);
    // A ranged answer's Content-Length is the range's; the whole size is in Content-Range.
    const total = response.headers.get("content-range")?.match(/\/(\d+)$/)?.[1];
    if (total) info.size = Number(total);
    if (!range) return { info, body: response.body };
    // Servers may ignore Range (HTTP allows it) or send more than asked (s3rver answers
    // `bytes=0-0` with the whole object): cut what was asked out of what was served.
    const served = response.headers.get("content-range")?.match(/^bytes (\d+)-(\d+)\//);
    const start = response.status === 206 && served ? Number(served[1]) : 0;
    const end = response.status === 206 && served ? Number(served[2]) : info.size - 1;
    if (start > range.start || end < range.end) {
      await response.body.cancel();
      throw new S3Error(response.status, `S3 GET ${name}: served ${start}-${end}, not the range`);
    }
    if (start === range.start && end === range.end) return { info, body: response.body };
    const relative = { start: range.start - start, end: range.end - start };
    return { info, body: response.body.pipeThrough(slice(relative)) };
  }

  async delete(name: string): Promise<void> {
    const response = await this.#send(this.#url(name), { method: "DELETE" });
    await response.body?.cancel();
    if (!response.ok && response.status !== 404) {
      throw new S3Error(response.status, `S3 DELETE ${name}: ${response.status}`);
    }
  }
}

/** Keeps bytes `range.start..range.end` (inclusive) of a stream. */
function slice(range: ByteRange): TransformStream<Uint8Array, Uint8Array> {
  let offset = 0;
  return new TransformStream({
    transform(chunk, controller) {
      const from = Math.max(0, range.start - offset);
      const to = Math.min(chunk.byteLength, range.end + 1 - offset);
      if (to > from) controller.enqueue(chunk.subarray(from, to));
      offset += chunk.byteLength;
    },
  });
}

function infoFrom(headers: Headers): BlobInfo {
  const etag = headers.get("etag") ?? '""';
  const modified = headers.get("last-modified");
  return {
    size: Number(headers.get("content-length") ?? 0),
    contentType: headers.get("content-type") ?? "application/octet-stream",
    etag: etag.startsWith('"') ? etag : `"${etag}"`,
    uploadedAt: modified ? Date.parse(modified) : 0,
  };
}

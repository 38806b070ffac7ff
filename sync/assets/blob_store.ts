/**
 * Where asset bytes live. Metadata (which file and user an object belongs to) is in the `asset` table;
 * the store only knows object names. Implementations: {@link FsBlobStore} (local directory, default)
 * and {@link S3BlobStore} (any S3-compatible service). Both pass tests/assets/blob_store_contract_test.ts.
 *
 * @module
 */

/** Object names: one path segment of safe characters, no dot-only names (no traversal possible). */
export const OBJECT_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$/;

/** `true` when `name` is a valid object name (see {@link OBJECT_NAME_PATTERN}). */
export function isValidObjectName(name: string): boolean {
  return OBJECT_NAME_PATTERN.test(name) && !name.includes("..");
}

/** Stored object metadata. */
export interface BlobInfo {
  size: number;
  contentType: string;
  /** Strong ETag, quoted (`"…"`). */
  etag: string;
  /** Epoch ms. */
  uploadedAt: number;
}

/** An inclusive byte range. */
export interface ByteRange {
  start: number;
  end: number;
}

/** An object being read. */
export interface BlobObject {
  info: BlobInfo;
  /** The bytes (of `range` when one was asked for). */
  body: ReadableStream<Uint8Array>;
}

/** Blob storage. Every method may be called concurrently from several isolates. */
export interface BlobStore {
  /** Stores `bytes` under `name`, replacing any previous object. */
  put(name: string, bytes: Uint8Array, contentType: string): Promise<BlobInfo>;
  /** Metadata, or `null` when there is no such object. */
  head(name: string): Promise<BlobInfo | null>;
  /** The object (or a range of it), or `null`. `range` must lie within the object. */
  get(name: string, range?: ByteRange): Promise<BlobObject | null>;
  /** Removes the object (no-op when absent). */
  delete(name: string): Promise<void>;
}

/** A strong ETag from the content: the hex SHA-256 (first 32 hex digits), quoted. */
export async function contentEtag(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>),
  );
  return `"${[...digest.slice(0, 16)].map((b) => b.toString(16).padStart(2, "0")).join("")}"`;
}

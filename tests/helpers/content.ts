/**
 * Helpers of the content tests (history, snapshots, publishing, assets, deletion): users and files,
 * a temporary blob directory, and JSON requests with a dev token.
 *
 * @module
 */
import { FsBlobStore } from "../../sync/assets/fs_blob_store.ts";
import type { AuthServer } from "./user_sync_client.ts";

/** Inserts users `alice` and `bob` and files owned by alice (`extra` per file id). */
export async function seedFiles(
  server: AuthServer,
  files: Record<string, Record<string, unknown>> = { f1: {} },
): Promise<void> {
  const now = Date.now();
  const { db } = server.deps.database;
  await db.insertInto("user").values(
    ["alice", "bob"].map((id) => ({
      id,
      name: id,
      email: `${id}@example.com`,
      createdAt: now,
      updatedAt: now,
    })),
  ).execute();
  const rows = Object.entries(files).map(([id, extra]) => ({
    id,
    name: `File ${id}`,
    ownerId: "alice",
    publishedSlug: `slug-${id}`,
    createdAt: now,
    updatedAt: now,
    ...extra,
  }));
  if (rows.length > 0) await db.insertInto("file").values(rows).execute();
}

/** A blob store in a fresh temporary directory, removed on dispose. */
export async function tempBlobs(): Promise<
  { dir: string; blobs: FsBlobStore } & AsyncDisposable
> {
  const dir = await Deno.makeTempDir({ prefix: "blobs-" });
  return {
    dir,
    blobs: new FsBlobStore(dir),
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

/** Options of {@link api}. */
export interface ApiOptions {
  method?: string;
  /** A user id (a dev token is fetched) or a raw bearer token (`{ bearer }`). */
  as?: string | { bearer: string };
  json?: unknown;
  body?: BodyInit;
  headers?: Record<string, string>;
}

/** A parsed response body (tests inspect it field by field). */
// deno-lint-ignore no-explicit-any
export type Body = any;

/** Sends a request to the server; returns status, headers and the parsed JSON (or text) body. */
export async function api(
  server: AuthServer,
  path: string,
  options: ApiOptions = {},
): Promise<{ status: number; headers: Headers; body: Body; bytes: Uint8Array }> {
  const headers: Record<string, string> = { ...options.headers };
  if (typeof options.as === "string") {
    headers.authorization = `Bearer ${await server.token(options.as)}`;
  } else if (options.as) headers.authorization = `Bearer ${options.as.bearer}`;
  let body = options.body;
  if (options.json !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(options.json);
  }
  const response = await fetch(`${server.url}${path}`, {
    method: options.method ?? (body === undefined ? "GET" : "POST"),
    headers,
    ...(body !== undefined ? { body } : {}),
  });
  const bytes = new Uint8Array(await response.arrayBuffer());
  const text = new TextDecoder().decode(bytes);
  let parsed: unknown = text;
  if (response.headers.get("content-type")?.includes("json")) {
    try {
      parsed = JSON.parse(text);
    } catch { /* keep the text */ }
  }
  return { status: response.status, headers: response.headers, body: parsed, bytes };
}

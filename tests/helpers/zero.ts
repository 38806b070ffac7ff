/**
 * Zero test helpers: the shard tables zero-cache would create at its first start (for endpoint
 * tests without zero-cache), and pushes and queries as zero-cache sends them (specs/zero-sync.md §2).
 *
 * @module
 */
import { sql } from "kysely";
import type { Database } from "../../db/database.ts";

/** `zero_0.clients` and `zero_0.mutations`, as zero-cache 1.9 creates them. */
export async function createZeroShardTables(database: Database): Promise<void> {
  await sql`CREATE SCHEMA IF NOT EXISTS "zero_0"`.execute(database.db);
  await sql`
    CREATE TABLE IF NOT EXISTS "zero_0"."clients" (
      "clientGroupID"  TEXT NOT NULL,
      "clientID"       TEXT NOT NULL,
      "lastMutationID" BIGINT NOT NULL,
      "userID"         TEXT,
      PRIMARY KEY("clientGroupID", "clientID")
    )`.execute(database.db);
  await sql`
    CREATE TABLE IF NOT EXISTS "zero_0"."mutations" (
      "clientGroupID"  TEXT NOT NULL,
      "clientID"       TEXT NOT NULL,
      "mutationID"     BIGINT NOT NULL,
      "result"         JSON NOT NULL,
      PRIMARY KEY("clientGroupID", "clientID", "mutationID")
    )`.execute(database.db);
}

/** One custom mutation of a push. */
export interface TestMutation {
  id: number;
  name: string;
  args: unknown;
  clientID?: string;
}

/** A push body as zero-cache sends it. */
export function pushBody(
  mutations: TestMutation[],
  options: { clientGroupID?: string; pushVersion?: number } = {},
): Record<string, unknown> {
  return {
    clientGroupID: options.clientGroupID ?? "cg1",
    timestamp: Date.now(),
    pushVersion: options.pushVersion ?? 1,
    requestID: crypto.randomUUID(),
    mutations: mutations.map((mutation) => ({
      type: "custom",
      id: mutation.id,
      clientID: mutation.clientID ?? "c1",
      name: mutation.name,
      timestamp: Date.now(),
      args: [mutation.args],
    })),
  };
}

/** POSTs to a Zero endpoint with a bearer token; the status and the parsed body. */
export async function postZero(
  url: string,
  token: string | null,
  body: unknown,
): Promise<{ status: number; body: Record<string, unknown> & { [key: string]: unknown } }> {
  const response = await fetch(`${url}?schema=zero_0&appID=zero`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      ...(token === null ? {} : { authorization: `Bearer ${token}` }),
    },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

/** A file id as tldraw's client makes them (16–32 URL-safe characters). */
export function zeroFileId(label: string): string {
  return `${label}-${crypto.randomUUID().replaceAll("-", "")}`.slice(0, 32);
}

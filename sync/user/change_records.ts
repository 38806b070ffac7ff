/**
 * Rows of the `user_change` table (migrations/003_user_sync.sql) and the queries that read them.
 *
 * @module
 */
import { type Kysely, sql } from "kysely";
import type { DB } from "../../db/schema.ts";
import { KEY_COLUMNS, type RowChange, type SyncTable } from "./protocol.ts";

/** Events of the change table. `grant`/`revoke` add a file to / remove it from the listed users' data only. */
export const CHANGE_EVENTS = ["insert", "update", "delete", "grant", "revoke"] as const;
/** One of {@link CHANGE_EVENTS}. */
export type ChangeEvent = (typeof CHANGE_EVENTS)[number];

/** One row of the change table. */
export interface ChangeRecord {
  seq: number;
  /** The users whose data this change touches. */
  userIds: string[];
  table: SyncTable;
  event: ChangeEvent;
  /** The new row (insert/update/grant) or the old row (delete/revoke). */
  row: Record<string, unknown>;
  /** The row before an update. */
  before: Record<string, unknown> | null;
}

type RawRecord = {
  seq: number | string;
  userIds: string[];
  table: SyncTable;
  event: ChangeEvent;
  row: unknown;
  before: unknown;
};

function parseJson(value: unknown): Record<string, unknown> | null {
  if (value === null || value === undefined) return null;
  return (typeof value === "string" ? JSON.parse(value) : value) as Record<string, unknown>;
}

function toRecord(raw: RawRecord): ChangeRecord {
  return {
    seq: Number(raw.seq),
    userIds: raw.userIds,
    table: raw.table,
    event: raw.event,
    row: parseJson(raw.row) ?? {},
    before: parseJson(raw.before),
  };
}

const COLUMNS = sql`"seq", "userIds", "table", "event", "row", "before"`;

/** The changes the current transaction wrote (call it just before commit). */
export async function readChangesOfCurrentTransaction(db: Kysely<DB>): Promise<ChangeRecord[]> {
  const { rows } = await sql<RawRecord>`
    SELECT ${COLUMNS} FROM "user_change" WHERE "txid" = txid_current() ORDER BY "seq"
  `.execute(db);
  return rows.map(toRecord);
}

/** Changes with a seq above `after` or in `extra` (pending gaps), in seq order, at most `limit`. */
export async function readChanges(
  db: Kysely<DB>,
  after: number,
  extra: number[],
  limit: number,
): Promise<ChangeRecord[]> {
  // Two index range scans rather than one OR, which could fall back to scanning the whole table.
  const { rows } = await sql<RawRecord>`
    SELECT * FROM (
      (SELECT ${COLUMNS} FROM "user_change" WHERE "seq" > ${after} ORDER BY "seq" LIMIT ${limit})
      UNION ALL
      (SELECT ${COLUMNS} FROM "user_change" WHERE "seq" = ANY(${`{${extra.join(",")}}`}::BIGINT[]))
    ) AS "changes"
    ORDER BY "seq" LIMIT ${limit}
  `.execute(db);
  return rows.map(toRecord);
}

/** The highest seq in the table (0 when empty). */
export async function latestSeq(db: Kysely<DB>): Promise<number> {
  const { rows } = await sql<{ seq: number | string | null }>`
    SELECT max("seq") AS "seq" FROM "user_change"
  `.execute(db);
  return Number(rows[0]?.seq ?? 0);
}

/** The seqs present above `after`. */
export async function seqsAbove(db: Kysely<DB>, after: number): Promise<number[]> {
  const { rows } = await sql<{ seq: number | string }>`
    SELECT "seq" FROM "user_change" WHERE "seq" > ${after}
  `.execute(db);
  return rows.map((row) => Number(row.seq));
}

/** Deletes changes older than `olderThanMs` (epoch ms). Returns how many went. */
export async function pruneChanges(db: Kysely<DB>, olderThanMs: number): Promise<number> {
  const result = await sql`DELETE FROM "user_change" WHERE "createdAt" < ${olderThanMs}`.execute(
    db,
  );
  return Number(result.numAffectedRows ?? 0);
}

/** The change as a client sees it: grant → insert, revoke → delete; deletes carry only the key. */
export function toRowChange(record: ChangeRecord): RowChange {
  const event = record.event === "grant"
    ? "insert"
    : record.event === "revoke"
    ? "delete"
    : record.event;
  if (event !== "delete") return { table: record.table, event, row: record.row };
  const key: Record<string, unknown> = {};
  for (const column of KEY_COLUMNS[record.table]) key[column] = record.row[column];
  return { table: record.table, event, row: key };
}

/** A key naming the row a change is about, for ordering deliveries per row. */
export function rowKey(record: ChangeRecord): string {
  return [record.table, ...KEY_COLUMNS[record.table].map((column) => record.row[column])].join(
    "\u0000",
  );
}

/**
 * Applying one `mutate` message: validate every row update against the permission rules, apply it, and bump
 * the user's mutation number, all in one Postgres transaction that holds the user's advisory lock (so that
 * mutations of one user are serialised across processes too). Transient connection failures are retried.
 * Server routes that write rows for a user (creating or restoring a file) go through the same rules
 * with {@link applyServerWrite}.
 *
 * @module
 */
import { type Kysely, sql, type Transaction } from "kysely";
import type { Database } from "../../db/database.ts";
import type { DB, File } from "../../db/schema.ts";
import { type ChangeRecord, readChangesOfCurrentTransaction } from "./change_records.ts";
import { parseCreateSource } from "./file_source.ts";
import {
  IMMUTABLE_COLUMNS,
  KEY_COLUMNS,
  MutationError,
  type RowUpdate,
  type SyncTable,
} from "./protocol.ts";

/** Namespace of the per-user advisory locks (the second key is the hash of the user id). */
const USER_LOCK_NAMESPACE = 727_465_002;

/** Limits and hooks of {@link applyMutation} and {@link applyServerWrite}. */
export interface ApplyMutationOptions {
  /** At most this many non-deleted files per owner. */
  maxFilesPerUser: number;
  /**
   * How long a deleted file can be restored by its owner (ms since it was deleted; default: until
   * its hard delete). Restoring is an update of `isDeleted` (and `updatedAt`) to `false`.
   */
  recoveryWindowMs?: number;
  /** Attempts on transient connection errors (default 3). */
  attempts?: number;
  /** Base backoff between attempts, doubled each time (default 50 ms). */
  retryDelayMs?: number;
  /** Test hook: runs at the start of each attempt, inside the transaction; may throw. */
  beforeAttempt?: (attempt: number) => void | Promise<void>;
  /**
   * Runs inside the transaction after a file row was written, with the row before and after (either
   * may be missing). Throwing a {@link MutationError} rejects the whole mutation (publishing uses it to
   * copy the document together with the row change, and to report `publish_failed`; a new file's
   * `createSource` is copied into its room here).
   */
  afterFileWrite?: (trx: Trx, before: File | undefined, after: File | undefined) => Promise<void>;
}

/** What a committed mutation produced. */
export interface AppliedMutation {
  mutationNumber: number;
  /** The feed records the transaction wrote, in seq order. */
  changes: ChangeRecord[];
}

type Trx = Transaction<DB>;
type Row = Record<string, unknown>;

/**
 * Runs the mutation. Throws {@link MutationError} with the code for the client (`unknown_error` for
 * anything unexpected); nothing is applied in that case.
 */
export function applyMutation(
  database: Database,
  userId: string,
  updates: RowUpdate[],
  options: ApplyMutationOptions,
): Promise<AppliedMutation> {
  return inTransaction(database, options, async (trx) => {
    await applyRowUpdates(trx, userId, updates, options);
    const { mutationNumber } = await trx.insertInto("user_mutation_number")
      .values({ userId, mutationNumber: 1 })
      .onConflict((oc) =>
        oc.column("userId").doUpdateSet({
          mutationNumber: sql<number>`"user_mutation_number"."mutationNumber" + 1`,
        })
      )
      .returning("mutationNumber")
      .executeTakeFirstOrThrow();
    const changes = await readChangesOfCurrentTransaction(trx);
    return { mutationNumber: Number(mutationNumber), changes };
  });
}

/**
 * Applies row updates on the user's behalf for a server route (create a file, restore one): the
 * same rules, hooks and lock as a mutation, but no mutation number, which belongs to the user's
 * clients. Returns the feed records the transaction wrote.
 */
export function applyServerWrite(
  database: Database,
  userId: string,
  updates: RowUpdate[],
  options: ApplyMutationOptions,
): Promise<ChangeRecord[]> {
  return inTransaction(database, options, async (trx) => {
    await applyRowUpdates(trx, userId, updates, options);
    return await readChangesOfCurrentTransaction(trx);
  });
}

/**
 * The rule set of every transport (the user-data channel, server routes, Zero's mutators): inside
 * a transaction the caller owns, takes the user's advisory lock, then validates and writes each
 * update, running the file hooks. Throws {@link MutationError}; the caller's transaction then
 * rolls back.
 */
export async function applyRowUpdates(
  trx: Trx,
  userId: string,
  updates: RowUpdate[],
  options: ApplyMutationOptions,
): Promise<void> {
  await sql`SELECT pg_advisory_xact_lock(${USER_LOCK_NAMESPACE}, hashtext(${userId}))`.execute(trx);
  for (const update of updates) await applyUpdate(trx, userId, update, options);
}

/**
 * One Postgres transaction for a user's writes ({@link applyRowUpdates} takes the user's advisory
 * lock in it, so that writes of one user are serialised across processes too), retried on transient
 * connection failures.
 */
async function inTransaction<T>(
  database: Database,
  options: ApplyMutationOptions,
  work: (trx: Trx) => Promise<T>,
): Promise<T> {
  const attempts = options.attempts ?? 3;
  for (let attempt = 1;; attempt++) {
    try {
      return await database.db.transaction().execute(async (trx) => {
        await options.beforeAttempt?.(attempt);
        return await work(trx);
      });
    } catch (error) {
      if (error instanceof MutationError) throw error;
      if (isTransientError(error) && attempt < attempts) {
        await new Promise((resolve) =>
          setTimeout(resolve, (options.retryDelayMs ?? 50) * 2 ** (attempt - 1))
        );
        continue;
      }
      if (isDataError(error)) throw new MutationError("bad_request", describe(error));
      throw new MutationError("unknown_error", describe(error));
    }
  }
}

const TRANSIENT_CODES = new Set([
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
  "ECONNRESET",
  "ECONNREFUSED",
  "EPIPE",
  "57P01", // admin_shutdown
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now
  "40001", // serialization_failure
  "40P01", // deadlock_detected
]);

/** Connection failures (SQLSTATE class 08 and friends) that are worth retrying. */
export function isTransientError(error: unknown): boolean {
  const code = errorCode(error);
  if (code === undefined) return false;
  return TRANSIENT_CODES.has(code) || code.startsWith("08");
}

/** Integrity-constraint violations and bad values (classes 22, 23): the client sent a bad row. */
export function isDataError(error: unknown): boolean {
  const code = errorCode(error);
  return code !== undefined && (code.startsWith("22") || code.startsWith("23"));
}

function errorCode(error: unknown): string | undefined {
  if (typeof error !== "object" || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === "string" ? code : undefined;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function applyUpdate(
  trx: Trx,
  userId: string,
  update: RowUpdate,
  options: ApplyMutationOptions,
): Promise<void> {
  const row = update.row as Row;
  let fileBefore: File | undefined;
  switch (update.table) {
    case "user":
      if (row.id !== userId) throw new MutationError("forbidden", "not your user row");
      break;
    case "file":
      fileBefore = await validateFile(trx, userId, update.event, row, options);
      break;
    case "file_state":
      await validateFileState(trx, userId, row);
      break;
  }
  await writeRow(trx, update.table, update.event, row);
  if (update.table === "file" && options.afterFileWrite) {
    const fileAfter = await trx.selectFrom("file").selectAll().where("id", "=", row.id as string)
      .executeTakeFirst();
    await options.afterFileWrite(trx, fileBefore, fileAfter);
  }
}

async function lockFile(trx: Trx, fileId: string): Promise<File | undefined> {
  return await trx.selectFrom("file").selectAll().where("id", "=", fileId).forUpdate()
    .executeTakeFirst();
}

async function validateFile(
  trx: Trx,
  userId: string,
  event: RowUpdate["event"],
  row: Row,
  options: ApplyMutationOptions,
): Promise<File | undefined> {
  const existing = await lockFile(trx, row.id as string);
  if (!existing) {
    // Creating: only for oneself, within the file limit. An update/delete of a missing row writes nothing.
    if (row.ownerId !== userId) {
      throw new MutationError("forbidden", "files are created by their owner");
    }
    if (event === "insert" && row.createSource != null && !parseCreateSource(row.createSource)) {
      throw new MutationError(
        "bad_request",
        "createSource must be f/<fileId>, p/<publishedSlug>, s/<snapshotSlug> or r/<roomId>",
      );
    }
    if (event === "insert") {
      const { count } = await trx.selectFrom("file")
        .select((eb) => eb.fn.countAll<number>().as("count"))
        .where("ownerId", "=", userId).where("isDeleted", "=", false)
        .executeTakeFirstOrThrow();
      if (Number(count) >= options.maxFilesPerUser) {
        throw new MutationError("max_files_reached", `at most ${options.maxFilesPerUser} files`);
      }
    }
    return undefined;
  }
  if (existing.isDeleted) {
    await validateRestore(trx, userId, event, row, existing, options);
    return existing;
  }
  if (existing.ownerId === userId) return existing;
  // A file someone else owns: only a guest (it is in their data) of a file shared for editing may touch
  // its `updatedAt`, and nothing else.
  const isGuest = existing.shared && await hasFileState(trx, userId, existing.id);
  const columns = Object.keys(row).filter((column) => column !== "id");
  if (
    isGuest && existing.sharedLinkType === "edit" && event !== "delete" &&
    columns.length === 1 && columns[0] === "updatedAt"
  ) return existing;
  throw new MutationError("forbidden", "not your file");
}

/**
 * A deleted file may only be restored: by its owner, setting `isDeleted` to false (and `updatedAt`),
 * within the recovery window.
 */
async function validateRestore(
  trx: Trx,
  userId: string,
  event: RowUpdate["event"],
  row: Row,
  existing: File,
  options: ApplyMutationOptions,
): Promise<void> {
  const columns = Object.keys(row).filter((column) => column !== "id");
  const restores = event !== "delete" && row.isDeleted === false &&
    columns.every((column) => column === "isDeleted" || column === "updatedAt");
  if (existing.ownerId !== userId || !restores) {
    throw new MutationError("forbidden", "the file is deleted");
  }
  const queued = await trx.selectFrom("file_deletion").select("requestedAt")
    .where("fileId", "=", existing.id).executeTakeFirst();
  const window = options.recoveryWindowMs;
  if (queued && window !== undefined && Date.now() - Number(queued.requestedAt) > window) {
    throw new MutationError("forbidden", "the file's recovery window has passed");
  }
}

async function hasFileState(db: Kysely<DB>, userId: string, fileId: string): Promise<boolean> {
  const found = await db.selectFrom("file_state").select("fileId")
    .where("userId", "=", userId).where("fileId", "=", fileId).executeTakeFirst();
  return found !== undefined;
}

async function validateFileState(trx: Trx, userId: string, row: Row): Promise<void> {
  if (row.userId !== userId) throw new MutationError("forbidden", "not your file state");
  // FOR SHARE: the file cannot be unshared or deleted under us before this commits.
  const file = await trx.selectFrom("file").select(["ownerId", "shared"])
    .where("id", "=", row.fileId as string).forShare().executeTakeFirst();
  if (!file) throw new MutationError("bad_request", "no such file");
  if (file.ownerId !== userId && !file.shared) {
    throw new MutationError("forbidden", "the file is not shared");
  }
}

/** Insert = upsert on the key; update = mutable columns only; delete = by key. */
async function writeRow(trx: Trx, table: SyncTable, event: RowUpdate["event"], row: Row) {
  const keys = KEY_COLUMNS[table];
  const keyWhere = sql.join(keys.map((key) => sql`${sql.ref(key)} = ${row[key]}`), sql` AND `);
  const mutable = Object.keys(row).filter((column) => !IMMUTABLE_COLUMNS[table].includes(column));
  const target = sql.table(table);
  if (event === "delete") {
    await sql`DELETE FROM ${target} WHERE ${keyWhere}`.execute(trx);
    return;
  }
  if (event === "update") {
    if (mutable.length === 0) return;
    const sets = sql.join(mutable.map((column) => sql`${sql.ref(column)} = ${row[column]}`));
    await sql`UPDATE ${target} SET ${sets} WHERE ${keyWhere}`.execute(trx);
    return;
  }
  const columns = Object.keys(row);
  const conflict = mutable.length === 0
    ? sql`DO NOTHING`
    : sql`DO UPDATE SET ${
      sql.join(mutable.map((column) => sql`${sql.ref(column)} = EXCLUDED.${sql.ref(column)}`))
    }`;
  await sql`
    INSERT INTO ${target} (${sql.join(columns.map((column) => sql.ref(column)))})
    VALUES (${sql.join(columns.map((column) => row[column]))})
    ON CONFLICT (${sql.join(keys.map((key) => sql.ref(key)))}) ${conflict}
  `.execute(trx);
}

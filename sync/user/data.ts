/**
 * Reads of a user's data: the user row (created from the identity on first connect), their files (owned and
 * guest) and file states, and the admission decision for a file.
 *
 * @module
 */
import { type Kysely, sql } from "kysely";
import type { Database } from "../../db/database.ts";
import type { DB, File, FileState, User } from "../../db/schema.ts";
import type { Identity } from "./identity.ts";
import type { InitialData } from "./protocol.ts";

/** Inserts the user row from the identity's claims unless it exists. */
export async function ensureUser(db: Kysely<DB>, identity: Identity, now = Date.now()) {
  await db.insertInto("user").values({
    id: identity.userId,
    name: identity.name ?? "",
    email: identity.email ?? "",
    createdAt: now,
    updatedAt: now,
  }).onConflict((oc) => oc.column("id").doNothing()).execute();
}

/**
 * Records that a signed-in user opened a file, as tldraw's client does on entering one: their
 * `file_state` gets `lastVisitAt` (and `firstVisitAt` the first time). For a guest this row is what
 * makes the file one of theirs ("shared with me"): the change feed brings it to their clients.
 * Nothing is written when the file is deleted, or private and not theirs (checked under a share
 * lock, so an unshare cannot slip in between).
 */
export async function recordFileVisit(
  db: Kysely<DB>,
  identity: Identity,
  fileId: string,
  now = Date.now(),
): Promise<void> {
  await ensureUser(db, identity, now);
  const userId = identity.userId;
  await db.transaction().execute(async (trx) => {
    const file = await trx.selectFrom("file").select(["ownerId", "shared", "isDeleted"])
      .where("id", "=", fileId).forShare().executeTakeFirst();
    if (!file || file.isDeleted || (file.ownerId !== userId && !file.shared)) return;
    await trx.insertInto("file_state").values({
      userId,
      fileId,
      firstVisitAt: now,
      lastVisitAt: now,
      isFileOwner: file.ownerId === userId,
    }).onConflict((oc) =>
      oc.columns(["userId", "fileId"]).doUpdateSet({
        lastVisitAt: now,
        firstVisitAt: sql<number>`COALESCE("file_state"."firstVisitAt", ${now})`,
      })
    ).execute();
  });
}

/** Files the user owns, plus files they have a `file_state` for (guest files). */
export function userFiles(db: Kysely<DB>, userId: string): Promise<File[]> {
  return db.selectFrom("file").selectAll()
    .where((eb) =>
      eb.or([
        eb("ownerId", "=", userId),
        eb("id", "in", eb.selectFrom("file_state").select("fileId").where("userId", "=", userId)),
      ])
    )
    .orderBy("id")
    .execute();
}

/** The user's data, the mutation number, and the change seqs already reflected in it. */
export interface UserSnapshot {
  initialData: InitialData;
  mutationNumber: number;
  /** Seqs of feed changes above `sinceSeq` for this user that this snapshot already reflects. */
  reflectedSeqs: Set<number>;
}

/**
 * Loads the user's data in one repeatable-read snapshot, together with the seqs of the user's feed changes
 * visible in that snapshot above `sinceSeq` (the connection then skips those when the feed delivers them,
 * so that a change committed before the snapshot never overwrites newer state after it).
 */
export async function loadUserSnapshot(
  database: Database,
  userId: string,
  sinceSeq: number,
): Promise<UserSnapshot | undefined> {
  return await database.db.transaction().setIsolationLevel("repeatable read").execute(
    async (trx) => {
      const user = await trx.selectFrom("user").selectAll().where("id", "=", userId)
        .executeTakeFirst();
      if (!user) return undefined;
      const files = await userFiles(trx, userId);
      const fileStates = await trx.selectFrom("file_state").selectAll()
        .where("userId", "=", userId).orderBy("fileId").execute();
      const number = await trx.selectFrom("user_mutation_number").select("mutationNumber")
        .where("userId", "=", userId).executeTakeFirst();
      const seqs = await sql<{ seq: number }>`
        SELECT "seq" FROM "user_change" WHERE "seq" > ${sinceSeq} AND ${userId} = ANY("userIds")
      `.execute(trx);
      return {
        initialData: {
          user: user as User as unknown as Record<string, unknown>,
          files: files as unknown as Record<string, unknown>[],
          fileStates: fileStates as FileState[] as unknown as Record<string, unknown>[],
        },
        mutationNumber: number?.mutationNumber ?? 0,
        reflectedSeqs: new Set(seqs.rows.map((row) => Number(row.seq))),
      };
    },
  );
}

/** The outcome of {@link fileAccess}. */
export type FileAccess =
  | { kind: "not_found" }
  | { kind: "forbidden" }
  | { kind: "not_authenticated" }
  | { kind: "ok"; readonly: boolean; isOwner: boolean; file: File };

/** The refusals {@link fileAccess} can return. */
export const FILE_ACCESS_REFUSALS = ["not_found", "forbidden", "not_authenticated"] as const;

/** The admission decision for a file given its row (see {@link fileAccess}). */
export function decideFileAccess(
  file: File | undefined,
  identity: Identity | undefined,
): FileAccess {
  if (!file || file.isDeleted) return { kind: "not_found" };
  if (identity && file.ownerId === identity.userId) {
    return { kind: "ok", readonly: false, isOwner: true, file };
  }
  if (!file.shared) return { kind: identity ? "forbidden" : "not_authenticated" };
  return { kind: "ok", readonly: file.sharedLinkType === "view", isOwner: false, file };
}

/**
 * Decides whether `identity` (undefined = anonymous) may open the file's room: a missing or deleted file is
 * `not_found`; the owner always gets read-write; a private file is `forbidden` (`not_authenticated` when
 * anonymous); a shared file is read-only for non-owners when its link type is `view`, else read-write.
 */
export async function fileAccess(
  database: Database,
  fileId: string,
  identity: Identity | undefined,
): Promise<FileAccess> {
  const file = await database.db.selectFrom("file").selectAll().where("id", "=", fileId)
    .executeTakeFirst();
  return decideFileAccess(file, identity);
}

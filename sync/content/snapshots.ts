/**
 * Shared snapshots ("share a copy": an immutable document under a random slug) and published copies of
 * files (the file's document as of its last publish, under the file's `publishedSlug`), in Postgres.
 *
 * @module
 */
import type { Kysely } from "kysely";
import type { Database } from "../../db/database.ts";
import type { DB } from "../../db/schema.ts";
import type { RoomStore } from "../tldraw/room_store.ts";
import { fileRoomId } from "../file_rooms.ts";
import { MutationError } from "../user/protocol.ts";
import {
  decodeSnapshot,
  type DocumentSnapshot,
  encodeSnapshot,
  readRoomDocument,
  serverSchema,
} from "./document.ts";

/** Slugs: URL-safe, 1–128 characters (the same alphabet as room ids). */
export const SLUG_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;

/** The room id under which a snapshot slug is served read-only (`/v/:slug`, `/ro/:slug`). */
export function snapshotRoomId(slug: string): string {
  return `snapshot:${slug}`;
}

/** Whether `roomId` serves a snapshot (read-only copies get no history of their own). */
export function isSnapshotRoom(roomId: string): boolean {
  return roomId.startsWith("snapshot:");
}

/** A random URL-safe slug (128 bits). */
export function randomSlug(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_")
    .replace(/=+$/, "");
}

/** `room_snapshot` rows. */
export class SnapshotStore {
  readonly #database: Database;
  constructor(database: Database) {
    this.#database = database;
  }

  /** Stores `snapshot` under a new slug. */
  async create(
    snapshot: DocumentSnapshot,
    source: { roomId?: string; userId?: string } = {},
  ): Promise<string> {
    const slug = randomSlug();
    const { data, size } = await encodeSnapshot(snapshot);
    await this.#database.db.insertInto("room_snapshot").values({
      slug,
      sourceRoomId: source.roomId ?? null,
      userId: source.userId ?? null,
      createdAt: Date.now(),
      size,
      data,
    }).execute();
    return slug;
  }

  /** The snapshot under `slug`, or `null`. `db` may be a transaction in progress. */
  async get(slug: string, db: Kysely<DB> = this.#database.db): Promise<DocumentSnapshot | null> {
    if (!SLUG_PATTERN.test(slug)) return null;
    const row = await db.selectFrom("room_snapshot").select("data")
      .where("slug", "=", slug).executeTakeFirst();
    return row ? await decodeSnapshot(row.data) : null;
  }

  /** Whether a snapshot exists under `slug` (cheap: no data read). */
  async exists(slug: string): Promise<boolean> {
    if (!SLUG_PATTERN.test(slug)) return false;
    const row = await this.#database.db.selectFrom("room_snapshot").select("slug")
      .where("slug", "=", slug).executeTakeFirst();
    return row !== undefined;
  }
}

/** Why publishing or unpublishing failed. */
export const PublishError = {
  no_such_file: "no_such_file",
  file_deleted: "file_deleted",
  empty_room: "empty_room",
  storage_failed: "storage_failed",
} as const;
/** One of {@link PublishError}. */
export type PublishError = (typeof PublishError)[keyof typeof PublishError];

/** Thrown by {@link Publisher} methods. */
export class PublishFailure extends Error {
  constructor(readonly reason: PublishError, message: string) {
    super(message);
    this.name = "PublishFailure";
  }
}

/** `published_file` rows: copies the file room's document on publish, removes it on unpublish. */
export class Publisher {
  readonly #database: Database;
  readonly #store: RoomStore;
  constructor(database: Database, store: RoomStore) {
    this.#database = database;
    this.#store = store;
  }

  /**
   * Copies the file's current document to its published slug. `db` may be the transaction that
   * changes the file row (the copy then commits or rolls back with it).
   */
  async publish(fileId: string, db: Kysely<DB> = this.#database.db): Promise<void> {
    const file = await db.selectFrom("file").select(["publishedSlug", "isDeleted"])
      .where("id", "=", fileId).executeTakeFirst();
    if (!file) throw new PublishFailure(PublishError.no_such_file, "no such file");
    if (file.isDeleted) throw new PublishFailure(PublishError.file_deleted, "the file is deleted");
    let snapshot: DocumentSnapshot | null;
    try {
      snapshot = await readRoomDocument(this.#store, fileRoomId(fileId));
    } catch (error) {
      throw new PublishFailure(PublishError.storage_failed, `reading the room failed: ${error}`);
    }
    // A file never opened has no room yet: publish the empty document (the editor's default
    // pages are created by the first client; a viewer of an empty copy sees an empty canvas).
    snapshot ??= { clock: 0, schema: serverSchema(), records: [] };
    const { data, size } = await encodeSnapshot(snapshot);
    const row = { fileId, slug: file.publishedSlug, publishedAt: Date.now(), size, data };
    await db.insertInto("published_file").values(row)
      .onConflict((oc) =>
        oc.column("fileId").doUpdateSet({
          slug: row.slug,
          publishedAt: row.publishedAt,
          size: row.size,
          data: row.data,
        })
      ).execute();
  }

  /** Removes the file's published copy (no-op when there is none). */
  async unpublish(fileId: string, db: Kysely<DB> = this.#database.db): Promise<void> {
    await db.deleteFrom("published_file").where("fileId", "=", fileId).execute();
  }

  /**
   * The published copy under `slug` (only while its file is published and not deleted). `db` may
   * be a transaction in progress.
   */
  async get(
    slug: string,
    db: Kysely<DB> = this.#database.db,
  ): Promise<(DocumentSnapshot & { publishedAt: number }) | null> {
    if (!SLUG_PATTERN.test(slug)) return null;
    const row = await db.selectFrom("published_file")
      .innerJoin("file", "file.id", "published_file.fileId")
      .select(["published_file.data", "published_file.publishedAt"])
      .where("published_file.slug", "=", slug)
      .where("file.published", "=", true).where("file.isDeleted", "=", false)
      .executeTakeFirst();
    if (!row) return null;
    return { ...await decodeSnapshot(row.data), publishedAt: row.publishedAt };
  }
}

/**
 * What a file-row change means for its published copy: `publish` when `published` turned on or
 * `lastPublished` moved while published, `unpublish` when it turned off, else nothing.
 */
export function publishAction(
  before: { published: boolean; lastPublished: number } | undefined,
  after: { published: boolean; lastPublished: number },
): "publish" | "unpublish" | null {
  if (after.published) {
    if (!before || !before.published) return "publish";
    return Number(after.lastPublished) !== Number(before.lastPublished) ? "publish" : null;
  }
  return before?.published ? "unpublish" : null;
}

/**
 * The user-data mutation hook that keeps published copies in step with file rows: it runs inside the
 * mutation's transaction, so the copy and the row change commit together, and a failure rejects the
 * mutation with `publish_failed` / `unpublish_failed`.
 */
export function publishOnFileWrite(
  publisher: Publisher,
  log?: { warn(message: string, fields?: Record<string, unknown>): void },
): (
  trx: Kysely<DB>,
  before: { id: string; published: boolean; lastPublished: number } | undefined,
  after: { id: string; published: boolean; lastPublished: number } | undefined,
) => Promise<void> {
  return async (trx, before, after) => {
    if (!after) return;
    const action = publishAction(before, after);
    if (!action) return;
    try {
      if (action === "publish") await publisher.publish(after.id, trx);
      else await publisher.unpublish(after.id, trx);
    } catch (error) {
      log?.warn(`${action} failed`, { fileId: after.id, error });
      const code = action === "publish" ? "publish_failed" : "unpublish_failed";
      throw new MutationError(code, error instanceof Error ? error.message : String(error));
    }
  };
}

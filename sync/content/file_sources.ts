/**
 * New files that start as a copy (`file.createSource`, see sync/user/file_source.ts): the source
 * document is read with the creator's rights, migrated to this server's schema, and written into
 * the new file's room inside the transaction that creates the row, so the file never appears
 * without its content and a refused source creates nothing.
 *
 * @module
 */
import type { Kysely } from "kysely";
import type { DB, File } from "../../db/schema.ts";
import { fileRoomId } from "../file_rooms.ts";
import type { ReadonlyIds } from "../readonly_ids.ts";
import type { WireRecord } from "../tldraw/protocol.ts";
import type { RoomStore } from "../tldraw/room_store.ts";
import { migrateTldrFile, type TldrFile } from "../tldraw/tldr_file.ts";
import { decideFileAccess } from "../user/data.ts";
import { type FileSource, parseCreateSource } from "../user/file_source.ts";
import { MutationError } from "../user/protocol.ts";
import { type DocumentSnapshot, readRoomDocument, serverSchema } from "./document.ts";
import type { Publisher, SnapshotStore } from "./snapshots.ts";

/** The id of tldraw's one document record (it carries the document's name). */
const DOCUMENT_ID = "document:document";

/** What {@link FileSources} reads and writes with. */
export interface FileSourcesDeps {
  /** The rooms' store (the source of truth for a file's or a room's current document). */
  store: RoomStore;
  snapshots: SnapshotStore;
  publisher: Publisher;
  readonlyIds: ReadonlyIds;
  /** Replaces the document of `roomId` with `records` (through the room engine). */
  seedRoom(roomId: string, records: WireRecord[]): Promise<void>;
}

/** Reads sources and seeds new files' rooms from them. */
export class FileSources {
  readonly #deps: FileSourcesDeps;

  constructor(deps: FileSourcesDeps) {
    this.#deps = deps;
  }

  /**
   * The source's records, migrated to this server's schema, as `userId` may read them. `db` is the
   * transaction creating the file (embedded PGlite has one connection: a query outside it would
   * wait for it forever). Throws a
   * {@link MutationError}: `forbidden` for a file the user may not open, `bad_request` for a
   * source that does not exist.
   */
  async read(source: FileSource, userId: string, db: Kysely<DB>): Promise<WireRecord[]> {
    const snapshot = await this.#snapshot(source, userId, db);
    const migrated = migrateTldrFile({
      tldrawFileFormatVersion: 1,
      schema: snapshot.schema as unknown as TldrFile["schema"],
      records: snapshot.records as TldrFile["records"],
    });
    if (!migrated.ok) {
      throw new MutationError("bad_request", `the source cannot be copied: ${migrated.message}`);
    }
    return migrated.records;
  }

  async #snapshot(source: FileSource, userId: string, db: Kysely<DB>): Promise<DocumentSnapshot> {
    const { store, snapshots, publisher, readonlyIds } = this.#deps;
    const empty = (): DocumentSnapshot => ({ clock: 0, schema: serverSchema(), records: [] });
    switch (source.kind) {
      case "file": {
        const file = await db.selectFrom("file").selectAll().where("id", "=", source.fileId)
          .executeTakeFirst();
        const access = decideFileAccess(file, { userId });
        if (access.kind === "not_found") {
          throw new MutationError("bad_request", "the source file does not exist");
        }
        if (access.kind !== "ok") {
          throw new MutationError("forbidden", "the source file is not shared with you");
        }
        // A file never opened has no room yet: its copy starts empty too.
        return await readRoomDocument(store, fileRoomId(source.fileId)) ?? empty();
      }
      case "published": {
        const published = await publisher.get(source.slug, db);
        if (!published) throw new MutationError("bad_request", "nothing is published there");
        return published;
      }
      case "snapshot": {
        const snapshot = await snapshots.get(source.slug, db);
        if (!snapshot) throw new MutationError("bad_request", "no such snapshot");
        return snapshot;
      }
      case "room": {
        const roomId = await readonlyIds.roomOf(source.roomId) ?? source.roomId;
        const document = await readRoomDocument(store, roomId);
        if (!document) throw new MutationError("bad_request", "no such room");
        return document;
      }
    }
  }

  /**
   * The user-data mutation hook: a new file row with a `createSource` gets a copy of that
   * document in its room (its document record named after the file), inside the mutation's
   * transaction.
   */
  readonly afterFileWrite = async (
    trx: Kysely<DB>,
    before: File | undefined,
    after: File | undefined,
  ): Promise<void> => {
    if (before || !after || after.createSource === null) return;
    const source = parseCreateSource(after.createSource);
    // Set by the server itself (e.g. "tldr" for an upload, seeded by its route).
    if (!source) return;
    const records = await this.read(source, after.ownerId, trx);
    const named = records.map((record) =>
      record.id === DOCUMENT_ID ? { ...record, name: after.name } : record
    );
    await this.#deps.seedRoom(fileRoomId(after.id), named);
  };
}

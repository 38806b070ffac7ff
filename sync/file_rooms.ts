/**
 * Files and their rooms: a file's tldraw room follows its `file` row. The row's changes arrive from
 * the user-data change feed on every isolate (whoever made them: the user-sync channel, a route, or
 * plain SQL), and each isolate applies them to the sessions it serves:
 *
 * - unshared → non-owner sessions closed with `FORBIDDEN`;
 * - link type `edit` → `view` → non-owners' writable sessions closed without a code, so their clients
 *   reconnect at once and are admitted read-only;
 * - deleted (soft or hard) → every session closed with `NOT_FOUND`;
 * - renamed → the room's `document:document` record takes the new name (and a rename in the editor
 *   updates `file.name`: see {@link FileRooms.onDocumentChanged}).
 *
 * Edits of a file's board move its `updatedAt` (the file lists' "last edited"), at most once per
 * `lastEditIntervalMs` per file, so a busy board costs the database one write per interval.
 *
 * The row is the source of truth when a file's room is loaded: the document takes the file's name
 * then ({@link FileRooms.prepare}), and an empty document name (a new room's default) never
 * overwrites a file's name.
 *
 * @module
 */
import { DocumentRecordType, TLDOCUMENT_ID } from "@tldraw/tlschema";
import type { Database } from "../db/database.ts";
import type { File } from "../db/schema.ts";
import type { Logger } from "../log.ts";
import type { ChangeFeed, FileChangeEvent as FileChange } from "./user/change_feed.ts";
import { CloseReason } from "./tldraw/protocol.ts";
import type { TldrawRoom } from "./tldraw/room.ts";
import type { RoomManager } from "./tldraw/room_manager.ts";

/** The room id of a file. The `:` keeps it out of reach of the anonymous `/r/:roomId` routes. */
export function fileRoomId(fileId: string): string {
  return `file:${fileId}`;
}

/** The file id of a file room id, or `undefined` for other rooms. */
export function fileIdOfRoom(roomId: string): string | undefined {
  return roomId.startsWith("file:") ? roomId.slice("file:".length) : undefined;
}

/** What a file-room session carries in its `meta`. */
export interface FileSessionMeta {
  userId: string | undefined;
  isOwner: boolean;
}

const DOCUMENT_ID: string = TLDOCUMENT_ID;

function sessionMeta(meta: unknown): FileSessionMeta {
  const value = meta as Partial<FileSessionMeta> | null | undefined;
  return { userId: value?.userId, isOwner: value?.isOwner === true };
}

/** How often a board's edits move its file's `updatedAt`, by default. */
export const LAST_EDIT_INTERVAL_MS = 30_000;
/** Files whose last write is remembered; older entries are dropped past this many. */
const REMEMBERED_FILES = 10_000;

/** Keeps file rooms in line with their file rows. */
export class FileRooms {
  #rooms: RoomManager | undefined;
  readonly #database: Database;
  readonly #log: Logger;
  readonly #lastEditIntervalMs: number;
  /** What this isolate last wrote to each file row from its board: the name and when. */
  readonly #written = new Map<string, { name: string | undefined; at: number }>();
  #stop: (() => void) | undefined;

  constructor(options: { database: Database; log: Logger; lastEditIntervalMs?: number }) {
    this.#database = options.database;
    this.#log = options.log.child({ component: "file_rooms" });
    this.#lastEditIntervalMs = options.lastEditIntervalMs ?? LAST_EDIT_INTERVAL_MS;
  }

  /** Starts applying file changes from `feed` to the rooms of `rooms`. */
  follow(feed: ChangeFeed, rooms: RoomManager): void {
    this.#rooms = rooms;
    this.#stop ??= feed.onFileChanged((change) => {
      this.#apply(change).catch((error) =>
        this.#log.error("applying a file change to its room failed", {
          fileId: change.fileId,
          error,
        })
      );
    });
  }

  /** Stops following. */
  stop(): void {
    this.#stop?.();
    this.#stop = undefined;
  }

  async #apply(change: FileChange): Promise<void> {
    const room = this.#rooms?.loaded(fileRoomId(change.fileId));
    if (!room) return; // no session here; admission reads the row afresh
    if (change.kind === "deleted" || (change.kind === "updated" && change.after.isDeleted)) {
      this.#closeSessions(room, () => true, CloseReason.NOT_FOUND);
      return;
    }
    if (change.kind !== "updated") return;
    const { before, after } = change;
    if (!after.shared) {
      this.#closeSessions(room, (meta) => !meta.isOwner, CloseReason.FORBIDDEN);
    } else if (after.sharedLinkType === "view" && before.sharedLinkType !== "view") {
      // A plain close: the client reconnects right away and is admitted read-only.
      this.#closeSessions(room, (meta, readonly) => !meta.isOwner && !readonly, undefined);
    }
    if (after.name !== before.name) await this.syncDocumentName(room, after);
  }

  #closeSessions(
    room: TldrawRoom,
    which: (meta: FileSessionMeta, readonly: boolean) => boolean,
    reason: CloseReason | undefined,
  ): void {
    for (const session of room.getSessions()) {
      if (which(sessionMeta(session.meta), session.isReadonly)) {
        room.closeSession(session.sessionId, reason);
      }
    }
  }

  /**
   * Before a session joins a file's room: a room this isolate loads now takes the file's name
   * (a room already loaded here follows renames through the feed).
   */
  async prepare(file: Pick<File, "id" | "name">): Promise<void> {
    const rooms = this.#rooms;
    const roomId = fileRoomId(file.id);
    if (!rooms || rooms.loaded(roomId)) return;
    await rooms.withRoom(roomId, (room) => this.syncDocumentName(room, file));
  }

  /**
   * Gives the room's document record the file's name (no-op when equal). A room without one (a new
   * file: tldraw's client would create it with an empty name) gets one.
   */
  async syncDocumentName(room: TldrawRoom, file: Pick<File, "name">): Promise<void> {
    await room.updateDocument((records) => {
      const document = records.find((record) => record.id === DOCUMENT_ID);
      if (document?.name === file.name) return {};
      const named = document
        ? { ...document, name: file.name }
        : { ...DocumentRecordType.create({ id: TLDOCUMENT_ID }), name: file.name };
      return { puts: [named as unknown as typeof records[number]] };
    });
  }

  /**
   * Called after a commit in a file room on this isolate: a document name changed in the editor
   * becomes the file's name, and the edit moves the file's `updatedAt` (once per interval).
   * Idempotent, so isolates racing on it agree.
   */
  async onDocumentChanged(roomId: string): Promise<void> {
    const fileId = fileIdOfRoom(roomId);
    const room = fileId ? this.#rooms?.loaded(roomId) : undefined;
    if (!fileId || !room) return;
    const documentName = room.getRecord(DOCUMENT_ID)?.name;
    // An empty name is a new document's default, never a rename worth keeping.
    const name = typeof documentName === "string" && documentName !== "" ? documentName : undefined;
    const now = Date.now();
    const last = this.#written.get(fileId);
    const renamed = name !== undefined && name !== last?.name;
    if (!renamed && last && now - last.at < this.#lastEditIntervalMs) return;
    this.#remember(fileId, { name: name ?? last?.name, at: now });
    await this.#database.db.updateTable("file")
      .set({ updatedAt: now, ...(name !== undefined ? { name } : {}) })
      .where("id", "=", fileId)
      .where("isDeleted", "=", false)
      .where((eb) =>
        eb.or([
          eb("updatedAt", "<=", now - this.#lastEditIntervalMs),
          ...(name !== undefined ? [eb("name", "<>", name)] : []),
        ])
      )
      .execute();
  }

  #remember(fileId: string, written: { name: string | undefined; at: number }): void {
    this.#written.delete(fileId);
    this.#written.set(fileId, written);
    // Insertion order is write order: the first entries are the stalest.
    for (const stale of this.#written.keys()) {
      if (this.#written.size <= REMEMBERED_FILES) break;
      this.#written.delete(stale);
    }
  }
}

/**
 * Kysely table types matching `migrations/`. Column names are the quoted camelCase names clients see.
 * Epoch-millisecond timestamps are BIGINT columns read as JS numbers (both drivers are set up for that).
 *
 * @module
 */
import type { ColumnType, Generated, Insertable, Selectable, Updateable } from "kysely";

/** Link-sharing modes of a file. */
export const SHARED_LINK_TYPES = ["view", "edit"] as const;
/** `view` makes non-owners read-only; `edit` lets them write. */
export type SharedLinkType = (typeof SHARED_LINK_TYPES)[number];

/** The `user` table. */
export interface UserTable {
  id: string;
  name: string;
  email: string;
  avatar: Generated<string>;
  color: Generated<string>;
  exportFormat: Generated<string>;
  exportTheme: Generated<string>;
  exportBackground: Generated<boolean>;
  exportPadding: Generated<boolean>;
  createdAt: number;
  updatedAt: number;
  flags: Generated<string>;
  locale: string | null;
  animationSpeed: number | null;
  edgeScrollSpeed: number | null;
  colorScheme: string | null;
  areKeyboardShortcutsEnabled: boolean | null;
  enhancedA11yMode: boolean | null;
  isSnapMode: boolean | null;
  isWrapMode: boolean | null;
  isDynamicSizeMode: boolean | null;
  isPasteAtCursorMode: boolean | null;
  showUiLabels: boolean | null;
}

/** The `file` table. */
export interface FileTable {
  id: string;
  name: string;
  ownerId: string;
  thumbnail: Generated<string>;
  shared: Generated<boolean>;
  sharedLinkType: Generated<SharedLinkType>;
  published: Generated<boolean>;
  lastPublished: Generated<number>;
  publishedSlug: string;
  createdAt: number;
  updatedAt: number;
  isEmpty: Generated<boolean>;
  isDeleted: Generated<boolean>;
  createSource: string | null;
}

/** The `file_state` table: one row per (user, file) the user has visited. */
export interface FileStateTable {
  userId: string;
  fileId: string;
  firstVisitAt: number | null;
  lastEditAt: number | null;
  lastSessionState: string | null;
  lastVisitAt: number | null;
  isFileOwner: boolean | null;
  isPinned: boolean | null;
}

/** The `asset` table: uploaded objects linked to a file and the uploading user. */
export interface AssetTable {
  objectName: string;
  fileId: string;
  userId: string | null;
}

/** The `room_asset` table: uploads to anonymous rooms (routes/uploads.ts). */
export interface RoomAssetTable {
  objectName: string;
  roomId: string;
  createdAt: Generated<Date>;
}

/** The `room_history` table: compressed versions of a room's document (sync/content/history.ts). */
export interface RoomHistoryTable {
  id: Generated<number>;
  roomId: string;
  clock: number;
  createdAt: number;
  reason: "interval" | "last_leave" | "restore" | "manual";
  /** Uncompressed JSON size in bytes. */
  size: number;
  /** gzip-compressed JSON `{schema, records}`. */
  data: Uint8Array;
}

/** The `room_snapshot` table: "share a copy" snapshots under a slug. */
export interface RoomSnapshotTable {
  slug: string;
  sourceRoomId: string | null;
  userId: string | null;
  createdAt: number;
  size: number;
  data: Uint8Array;
}

/** The `published_file` table: a file's published copy, served under its `publishedSlug`. */
export interface PublishedFileTable {
  fileId: string;
  slug: string;
  publishedAt: number;
  size: number;
  data: Uint8Array;
}

/** The `file_deletion` table: files waiting for their background hard delete. */
export interface FileDeletionTable {
  fileId: string;
  requestedAt: number;
  attempts: Generated<number>;
  lastError: string | null;
}

/** The `asset_orphan` table: blob objects whose asset row is gone. */
export interface AssetOrphanTable {
  objectName: string;
  orphanedAt: number;
}

/** The `user_mutation_number` table: the last applied user-sync mutation number per user. */
export interface UserMutationNumberTable {
  userId: string;
  mutationNumber: ColumnType<number, number, number>;
}

/** The `livestore_store` table: one row per LiveStore store (sync/livestore/). */
export interface LivestoreStoreTable {
  storeId: string;
  /** Created once per store; clients wipe themselves when it changes. */
  backendId: string;
  /** seqNum of the last event, 0 for an empty log. */
  head: ColumnType<number, number | undefined, number>;
  createdAt: number;
  updatedAt: number;
}

/** The `livestore_event` table: the append-only event log of every LiveStore store. */
export interface LivestoreEventTable {
  storeId: string;
  seqNum: number;
  parentSeqNum: number;
  name: string;
  /** A JSON column; written and read as JSON text (see sync/livestore/postgres_event_store.ts). */
  args: string | null;
  clientId: string;
  sessionId: string;
  createdAt: number;
}

/** The migration bookkeeping table (`migrations.applied_migrations`). */
export interface AppliedMigrationTable {
  name: string;
  checksum: string;
  appliedAt: ColumnType<Date, Date | string | undefined, never>;
}

/** The whole database as kysely sees it. */
export interface DB {
  user: UserTable;
  file: FileTable;
  file_state: FileStateTable;
  asset: AssetTable;
  room_asset: RoomAssetTable;
  user_mutation_number: UserMutationNumberTable;
  room_history: RoomHistoryTable;
  room_snapshot: RoomSnapshotTable;
  published_file: PublishedFileTable;
  file_deletion: FileDeletionTable;
  asset_orphan: AssetOrphanTable;
  livestore_store: LivestoreStoreTable;
  livestore_event: LivestoreEventTable;
  "migrations.applied_migrations": AppliedMigrationTable;
}

/** A `user` row as read. */
export type User = Selectable<UserTable>;
/** A `user` row to insert. */
export type NewUser = Insertable<UserTable>;
/** A `user` row update. */
export type UserUpdate = Updateable<UserTable>;
/** A `file` row as read. */
export type File = Selectable<FileTable>;
/** A `file` row to insert. */
export type NewFile = Insertable<FileTable>;
/** A `file_state` row as read. */
export type FileState = Selectable<FileStateTable>;
/** A `file_state` row to insert. */
export type NewFileState = Insertable<FileStateTable>;
/** An `asset` row as read. */
export type Asset = Selectable<AssetTable>;

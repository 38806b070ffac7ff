/**
 * The user-data sync protocol (specs/user-sync.md): zod schemas of the client's messages and of the rows it
 * may write, the server's messages, error codes and close reasons.
 *
 * @module
 */
import { z } from "zod";

/** The user-sync protocol version this server speaks. Clients sending another one get `CLIENT_TOO_OLD`. */
export const USER_SYNC_PROTOCOL_VERSION = 2;

/** The tables a client syncs. */
export const SYNC_TABLES = ["user", "file", "file_state"] as const;
/** One of {@link SYNC_TABLES}. */
export type SyncTable = (typeof SYNC_TABLES)[number];

/** Row events a client sends and receives. */
export const ROW_EVENTS = ["insert", "update", "delete"] as const;
/** One of {@link ROW_EVENTS}. */
export type RowEvent = (typeof ROW_EVENTS)[number];

/** Reasons a mutation is rejected (`reject.errorCode`). */
export const MUTATION_ERROR_CODES = [
  "forbidden",
  "bad_request",
  "max_files_reached",
  "rate_limit_exceeded",
  "publish_failed",
  "unpublish_failed",
  "unknown_error",
] as const;
/** One of {@link MUTATION_ERROR_CODES}. */
export type MutationErrorCode = (typeof MUTATION_ERROR_CODES)[number];

/** The close code of every application-level close of a user-sync or room socket. */
export const APP_CLOSE_CODE = 4099;

/** Reasons sent with {@link APP_CLOSE_CODE}. */
export const CLOSE_REASONS = [
  "NOT_AUTHENTICATED",
  "FORBIDDEN",
  "NOT_FOUND",
  "CLIENT_TOO_OLD",
  "RATE_LIMITED",
  "BAD_REQUEST",
] as const;
/** One of {@link CLOSE_REASONS}. */
export type CloseReason = (typeof CLOSE_REASONS)[number];

/** Key columns per table (never mutable). */
export const KEY_COLUMNS: Record<SyncTable, readonly string[]> = {
  user: ["id"],
  file: ["id"],
  file_state: ["userId", "fileId"],
};

/** Columns that are never written by an update (besides the keys). */
export const IMMUTABLE_COLUMNS: Record<SyncTable, readonly string[]> = {
  user: ["id", "createdAt"],
  file: ["id", "ownerId", "createdAt", "createSource"],
  file_state: ["userId", "fileId"],
};

const text = z.string().max(100_000);
const id = z.string().min(1).max(200);
const millis = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const optionalInt = z.number().int().nullable();

/** Writable columns of `user`; all optional so that an `update` may carry only what changed. */
export const userRow = z.strictObject({
  id,
  name: text,
  email: text,
  avatar: text,
  color: text,
  exportFormat: text,
  exportTheme: text,
  exportBackground: z.boolean(),
  exportPadding: z.boolean(),
  createdAt: millis,
  updatedAt: millis,
  flags: text,
  locale: text.nullable(),
  animationSpeed: optionalInt,
  edgeScrollSpeed: optionalInt,
  colorScheme: text.nullable(),
  areKeyboardShortcutsEnabled: z.boolean().nullable(),
  enhancedA11yMode: z.boolean().nullable(),
  isSnapMode: z.boolean().nullable(),
  isWrapMode: z.boolean().nullable(),
  isDynamicSizeMode: z.boolean().nullable(),
  isPasteAtCursorMode: z.boolean().nullable(),
  showUiLabels: z.boolean().nullable(),
}).partial().required({ id: true });

/** Writable columns of `file` (the key required). */
export const fileRow = z.strictObject({
  id,
  name: text,
  ownerId: id,
  thumbnail: text,
  shared: z.boolean(),
  sharedLinkType: z.enum(["view", "edit"]),
  published: z.boolean(),
  lastPublished: millis,
  publishedSlug: id,
  createdAt: millis,
  updatedAt: millis,
  isEmpty: z.boolean(),
  isDeleted: z.boolean(),
  createSource: text.nullable(),
}).partial().required({ id: true });

/** Writable columns of `file_state` (the keys required). */
export const fileStateRow = z.strictObject({
  userId: id,
  fileId: id,
  firstVisitAt: millis.nullable(),
  lastEditAt: millis.nullable(),
  lastSessionState: text.nullable(),
  lastVisitAt: millis.nullable(),
  isFileOwner: z.boolean().nullable(),
  isPinned: z.boolean().nullable(),
}).partial().required({ userId: true, fileId: true });

/** A row as sent by a client: key columns plus any subset of the other columns. */
export type ClientRow = Record<string, unknown>;

const rowUpdate = z.discriminatedUnion("table", [
  z.strictObject({ table: z.literal("user"), event: z.enum(ROW_EVENTS), row: userRow }),
  z.strictObject({ table: z.literal("file"), event: z.enum(ROW_EVENTS), row: fileRow }),
  z.strictObject({
    table: z.literal("file_state"),
    event: z.enum(ROW_EVENTS),
    row: fileStateRow,
  }),
]);

/** One row change inside a `mutate` message. */
export type RowUpdate = z.infer<typeof rowUpdate>;

/** The shape of a message before its contents are checked: enough to answer a bad `mutate` with `reject`. */
export const envelopeSchema = z.looseObject({
  type: z.string(),
  mutationId: z.string().min(1).max(200).optional(),
});

/** Client → server messages. */
export const clientMessageSchema = z.discriminatedUnion("type", [
  z.strictObject({
    type: z.literal("mutate"),
    mutationId: z.string().min(1).max(200),
    updates: z.array(rowUpdate).min(1).max(500),
  }),
  z.strictObject({ type: z.literal("ping") }),
]);
/** A parsed client message. */
export type ClientMessage = z.infer<typeof clientMessageSchema>;

/** A row change as sent to clients. */
export interface RowChange {
  table: SyncTable;
  event: RowEvent;
  row: Record<string, unknown>;
}

/** The user's data as sent in `initial_data`. */
export interface InitialData {
  user: Record<string, unknown>;
  files: Record<string, unknown>[];
  fileStates: Record<string, unknown>[];
}

/** Server → client messages. */
export type ServerMessage =
  | { type: "initial_data"; initialData: InitialData; mutationNumber: number }
  | { type: "update"; updates: RowChange[] }
  | { type: "commit"; mutationIds: string[] }
  | { type: "reject"; mutationId: string; errorCode: MutationErrorCode }
  | { type: "pong" };

/** A mutation failure carrying the code the client receives in `reject`. */
export class MutationError extends Error {
  readonly code: MutationErrorCode;
  constructor(code: MutationErrorCode, message: string) {
    super(message);
    this.name = "MutationError";
    this.code = code;
  }
}

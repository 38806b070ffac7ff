/**
 * The tldraw sync wire protocol (v8, as spoken by `@tldraw/sync-core` 5.4.2): message shapes, zod
 * schemas for what clients send, close reasons and timing constants. Kept dependency-light so the
 * routes, the engine and the tests can share it.
 *
 * See `shared/specs/tldraw-sync-protocol.md` for the rules these constants come from.
 *
 * @module
 */
import { z } from "zod";

/** The protocol version this server speaks (and always reports in `connect`). */
export const PROTOCOL_VERSION = 8;
/** Oldest client protocol accepted (5 is treated like 6; 5–7 get no string appends). */
export const MIN_PROTOCOL_VERSION = 5;

/** Close code for fatal sync errors (`TLSyncErrorCloseEventCode`): the client stops reconnecting. */
export const SYNC_ERROR_CLOSE_CODE = 4099;

/** Reasons sent with {@link SYNC_ERROR_CLOSE_CODE} (`TLSyncErrorCloseEventReason` values). */
export const CloseReason = {
  NOT_FOUND: "NOT_FOUND",
  FORBIDDEN: "FORBIDDEN",
  NOT_AUTHENTICATED: "NOT_AUTHENTICATED",
  UNKNOWN_ERROR: "UNKNOWN_ERROR",
  CLIENT_TOO_OLD: "CLIENT_TOO_OLD",
  SERVER_TOO_OLD: "SERVER_TOO_OLD",
  INVALID_RECORD: "INVALID_RECORD",
  RATE_LIMITED: "RATE_LIMITED",
  ROOM_FULL: "ROOM_FULL",
} as const;
/** One of the {@link CloseReason} values. */
export type CloseReason = (typeof CloseReason)[keyof typeof CloseReason];

/**
 * Reasons of our own for limit violations, sent with {@link SYNC_ERROR_CLOSE_CODE} like the standard
 * ones (the client shows any 4099 reason as a fatal error) so the user learns what went wrong.
 */
export const LimitReason = {
  /** One message (whole or reassembled) is above the configured maximum. */
  MESSAGE_TOO_LARGE: "MESSAGE_TOO_LARGE",
  /** One record is above the per-record maximum. */
  RECORD_TOO_LARGE: "RECORD_TOO_LARGE",
  /** The push would make the room's document larger than allowed. */
  ROOM_TOO_LARGE: "ROOM_TOO_LARGE",
} as const;
/** One of the {@link LimitReason} values. */
export type LimitReason = (typeof LimitReason)[keyof typeof LimitReason];

/** Any reason this server closes a session with 4099. */
export type SyncCloseReason = CloseReason | LimitReason;

/** Legacy `incompatibility_error` reasons, sent instead of a 4099 close to protocol 5/6 clients. */
export const LegacyIncompatibilityReason = {
  clientTooOld: "clientTooOld",
  serverTooOld: "serverTooOld",
  invalidRecord: "invalidRecord",
  invalidOperation: "invalidOperation",
} as const;
/** One of the {@link LegacyIncompatibilityReason} values. */
export type LegacyIncompatibilityReason =
  (typeof LegacyIncompatibilityReason)[keyof typeof LegacyIncompatibilityReason];

/** Maps a close reason to its legacy `incompatibility_error` reason (spec 9.3). */
export function legacyReasonFor(reason: SyncCloseReason): LegacyIncompatibilityReason {
  switch (reason) {
    case CloseReason.CLIENT_TOO_OLD:
      return LegacyIncompatibilityReason.clientTooOld;
    case CloseReason.SERVER_TOO_OLD:
      return LegacyIncompatibilityReason.serverTooOld;
    case CloseReason.INVALID_RECORD:
      return LegacyIncompatibilityReason.invalidRecord;
    default:
      return LegacyIncompatibilityReason.invalidOperation;
  }
}

/** Timing constants of the reference server (milliseconds). */
export const Timeouts = {
  /** A socket that does not send `connect` within this is dropped (`SESSION_START_WAIT_TIME`). */
  connect: 10_000,
  /** A connected session without `ping`/`push` for this long is dropped (`SESSION_IDLE_TIMEOUT`). */
  idle: 20_000,
  /** Grace between a socket closing and its presence being removed (`SESSION_REMOVAL_WAIT_TIME`). */
  removal: 5_000,
  /** Data events produced within this window are sent as one `data` frame. */
  batch: 1000 / 60,
} as const;

/** Maximum characters of one client chunk (the client's `chunk()` size). */
export const CLIENT_CHUNK_SIZE = 262_144;

/** A record as it travels on the wire: at least `id` and `typeName`. */
export interface WireRecord {
  id: string;
  typeName: string;
  [key: string]: unknown;
}

/** A serialized store schema (`{schemaVersion, sequences}` or a legacy v1 schema). */
export type WireSchema = { schemaVersion: number; [key: string]: unknown };

/** A value-level diff op (spec 3.2); kept loose, the diff algebra of sync-core interprets it. */
export type WireValueOp = [string, ...unknown[]];
/** A record-level diff op: `["put", record]`, `["patch", objectDiff]` or `["remove"]`. */
export type WireRecordOp =
  | ["put", WireRecord]
  | ["patch", Record<string, WireValueOp>]
  | ["remove"];
/** `{ [recordId]: RecordOp }`. */
export type WireNetworkDiff = Record<string, WireRecordOp>;

const recordSchema = z.looseObject({ id: z.string().min(1), typeName: z.string().min(1) });
const valueOpSchema = z.tuple([z.string()], z.unknown());
const objectDiffSchema = z.record(z.string(), valueOpSchema);
const recordOpSchema = z.union([
  z.tuple([z.literal("put"), recordSchema]),
  z.tuple([z.literal("patch"), objectDiffSchema]),
  z.tuple([z.literal("remove")]),
]);

/** The client's `connect` request. */
export const connectRequestSchema = z.object({
  type: z.literal("connect"),
  connectRequestId: z.string(),
  lastServerClock: z.number(),
  // Missing / null versions are answered with CLIENT_TOO_OLD, not with a parse error.
  protocolVersion: z.number().nullish(),
  schema: z.looseObject({ schemaVersion: z.number() }).nullish(),
});

/** The client's `push` request. */
export const pushRequestSchema = z.object({
  type: z.literal("push"),
  clientClock: z.number(),
  diff: z.record(z.string(), recordOpSchema).optional(),
  presence: z.union([
    z.tuple([z.literal("put"), z.looseObject({})]),
    z.tuple([z.literal("patch"), objectDiffSchema]),
  ]).nullish(),
});

/** The client's `ping`. */
export const pingRequestSchema = z.object({ type: z.literal("ping") });

/** Any message a client may send. */
export const clientMessageSchema = z.discriminatedUnion("type", [
  connectRequestSchema,
  pushRequestSchema,
  pingRequestSchema,
]);

/**
 * {@link clientMessageSchema}'s verdict on a `push`, without zod: pushes are most of a busy room's
 * messages, and zod copied every record in them (7% of the serving thread with 50 clients sending
 * presence). Accepts exactly what the schema accepts and returns what it returns (the known keys;
 * records and diffs as they came). `undefined` when `data` is not a valid push.
 */
export function parsePush(data: unknown): PushRequest | undefined {
  if (!isPlainObject(data) || data.type !== "push" || typeof data.clientClock !== "number") {
    return undefined;
  }
  const { diff, presence } = data;
  if (diff !== undefined) {
    if (!isPlainObject(diff)) return undefined;
    for (const id in diff) if (!isRecordOp(diff[id])) return undefined;
  }
  if (presence !== undefined && presence !== null) {
    if (!Array.isArray(presence) || presence.length !== 2) return undefined;
    const [kind, value] = presence;
    if (kind === "put" ? !isPlainObject(value) : kind !== "patch" || !isObjectDiff(value)) {
      return undefined;
    }
  }
  const push: PushRequest = { type: "push", clientClock: data.clientClock };
  if (diff !== undefined) push.diff = diff as PushRequest["diff"];
  if (presence !== undefined) push.presence = presence as PushRequest["presence"];
  return push;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Whether `value` is an object diff: each op an array led by its name. */
export function isObjectDiff(value: unknown): boolean {
  if (!isPlainObject(value)) return false;
  for (const key in value) {
    const op = value[key];
    if (!Array.isArray(op) || op.length < 1 || typeof op[0] !== "string") return false;
  }
  return true;
}

function isRecordOp(op: unknown): boolean {
  if (!Array.isArray(op)) return false;
  switch (op[0]) {
    case "put": {
      const record = op[1];
      return op.length === 2 && isPlainObject(record) && typeof record.id === "string" &&
        record.id.length > 0 && typeof record.typeName === "string" && record.typeName.length > 0;
    }
    case "patch":
      return op.length === 2 && isObjectDiff(op[1]);
    case "remove":
      return op.length === 1;
    default:
      return false;
  }
}

/** A parsed `connect`. */
export type ConnectRequest = z.infer<typeof connectRequestSchema>;
/** A parsed `push`. */
export type PushRequest = z.infer<typeof pushRequestSchema>;
/** Any parsed client message. */
export type ClientMessage = z.infer<typeof clientMessageSchema>;

/** `push_result.action`. */
export type PushResultAction = "commit" | "discard" | { rebaseWithDiff: WireNetworkDiff };

/** Events that are batched in `data` frames. */
export type DataEvent =
  | { type: "patch"; diff: WireNetworkDiff; serverClock: number }
  | { type: "push_result"; clientClock: number; serverClock: number; action: PushResultAction };

/** The server's `connect` reply. */
export interface ConnectReply {
  type: "connect";
  connectRequestId: string;
  hydrationType: "wipe_all" | "wipe_presence";
  protocolVersion: number;
  schema: WireSchema;
  diff: WireNetworkDiff;
  serverClock: number;
  isReadonly: boolean;
}

/** Every message the server sends. */
export type ServerMessage =
  | ConnectReply
  | { type: "data"; data: DataEvent[] }
  | { type: "pong" }
  | { type: "custom"; data: unknown }
  | { type: "incompatibility_error"; reason: LegacyIncompatibilityReason };

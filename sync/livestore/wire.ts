/**
 * The wire format of `@livestore/sync-cf` 0.4.0: Effect RPC's JSON framing (`RpcSerialization.layerJson`)
 * carrying `SyncWsRpc.*` / `SyncHttpRpc.*` requests. Client messages are parsed with zod; server messages
 * are built by small constructors so that every frame we send has exactly the shape the client decodes.
 *
 * See shared/specs/livestore-sync.md, section A.2 and A.3.
 *
 * @module
 */
import { z } from "zod";

/** At most this many events per pull chunk (`MAX_PULL_EVENTS_PER_MESSAGE`). */
export const MAX_PULL_EVENTS_PER_CHUNK = 100;
/** At most this many bytes per pull chunk (`MAX_WS_MESSAGE_BYTES`). */
export const MAX_PULL_CHUNK_BYTES = 900_000;
/**
 * The client splits pushes into 100 events; we accept more so that a future client raising its limit
 * still works, but bound it so one request cannot hold a store lock for long.
 */
export const MAX_PUSH_EVENTS = 1_000;
/** Store ids end up in NOTIFY payloads (< 8000 bytes), KV keys and log lines; real ones are short. */
export const MAX_STORE_ID_LENGTH = 128;

/**
 * Letters, digits and `_ - . : @ =`, starting with a letter or digit: enough for the app's
 * `user:<id>` and `file:<id>` namespaces and for LiveStore's own examples, nothing that needs
 * escaping in a URL, a key or a log line.
 */
export const STORE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.:@=-]*$/;

const seqNum = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

/** A store id as it appears in the URL and in request payloads. */
export const StoreIdSchema = z.string().min(1).max(MAX_STORE_ID_LENGTH).regex(STORE_ID_PATTERN);

/** `LiveStoreEvent.Global.Encoded`: one event of the global log. */
export const EventEncodedSchema = z.object({
  name: z.string().min(1).max(1_024),
  args: z.unknown(),
  seqNum,
  parentSeqNum: seqNum,
  clientId: z.string().max(1_024),
  sessionId: z.string().max(1_024),
});
/** One event of the global log, as sent and received. */
export type EventEncoded = z.infer<typeof EventEncodedSchema>;

/** Effect's `Option` JSON encoding. */
const optionOf = <T extends z.ZodType>(value: T) =>
  z.discriminatedUnion("_tag", [
    z.object({ _tag: z.literal("None") }),
    z.object({ _tag: z.literal("Some"), value }),
  ]);

const CursorSchema = optionOf(z.object({
  backendId: z.string().min(1).max(256),
  eventSequenceNumber: seqNum,
}));

/** The sync payload the client sends along (any JSON; usually `{authToken}`). */
const SyncPayloadSchema = z.unknown();

/** `SyncWsRpc.Pull` / `SyncHttpRpc.Pull` payload (HTTP has no `live`). */
export const PullPayloadSchema = z.object({
  storeId: StoreIdSchema,
  payload: SyncPayloadSchema.optional(),
  live: z.boolean().optional(),
  cursor: CursorSchema,
});
/** A pull request payload. */
export type PullPayload = z.infer<typeof PullPayloadSchema>;

/** `SyncWsRpc.Push` / `SyncHttpRpc.Push` payload. */
export const PushPayloadSchema = z.object({
  storeId: StoreIdSchema,
  payload: SyncPayloadSchema.optional(),
  batch: z.array(EventEncodedSchema).max(MAX_PUSH_EVENTS),
  backendId: optionOf(z.string().max(256)),
});
/** A push request payload. */
export type PushPayload = z.infer<typeof PushPayloadSchema>;

/** `SyncHttpRpc.Ping` payload. */
export const PingPayloadSchema = z.object({
  storeId: StoreIdSchema,
  payload: SyncPayloadSchema.optional(),
});

/** The RPC tags a client may request, per transport. */
export const RPC_TAGS = {
  wsPull: "SyncWsRpc.Pull",
  wsPush: "SyncWsRpc.Push",
  httpPull: "SyncHttpRpc.Pull",
  httpPush: "SyncHttpRpc.Push",
  httpPing: "SyncHttpRpc.Ping",
} as const;

/** An Effect RPC `Request` frame (payload validated later, per tag). */
export const RequestFrameSchema = z.object({
  _tag: z.literal("Request"),
  // Effect encodes request ids (bigints) as decimal strings.
  id: z.string().regex(/^\d{1,20}$/),
  tag: z.string().max(128),
  payload: z.unknown(),
  headers: z.array(z.tuple([z.string(), z.string()])).optional(),
  traceId: z.string().optional(),
  spanId: z.string().optional(),
  sampled: z.boolean().optional(),
});
/** A parsed `Request` frame. */
export type RequestFrame = z.infer<typeof RequestFrameSchema>;

/** Every frame a client may send over the WebSocket. */
export const ClientFrameSchema = z.discriminatedUnion("_tag", [
  z.object({ _tag: z.literal("Ping") }),
  RequestFrameSchema,
  z.object({ _tag: z.literal("Ack"), requestId: z.string() }),
  z.object({
    _tag: z.literal("Interrupt"),
    requestId: z.string(),
    interruptors: z.array(z.unknown()).optional(),
  }),
  z.object({ _tag: z.literal("Eof") }),
]);
/** A parsed client frame. */
export type ClientFrame = z.infer<typeof ClientFrameSchema>;

/** `SyncBackend.PullResPageInfo`. */
export type PageInfo =
  | { _tag: "NoMore" }
  | { _tag: "MoreKnown"; remaining: number }
  | { _tag: "MoreUnknown" };

/** One item of a pull response batch. */
export interface PullBatchItem {
  eventEncoded: EventEncoded;
  metadata: { _tag: "Some"; value: { _tag: "SyncMessage.SyncMetadata"; createdAt: string } } | {
    _tag: "None";
  };
}

/** `SyncMessage.PullResponse`, the value of each pull `Chunk` (it has no `_tag`). */
export interface PullResponse {
  batch: PullBatchItem[];
  pageInfo: PageInfo;
  backendId: string;
}

/** The tagged errors the LiveStore client knows (`exit.cause.error`). */
export type SyncError =
  | { _tag: "ServerAheadError"; minimumExpectedNum: number; providedNum: number }
  | { _tag: "BackendIdMismatchError"; expected: string; received: string }
  | { _tag: "UnknownError"; cause: string; note?: string };

/** A server frame. */
export type ServerFrame =
  | { _tag: "Pong" }
  | { _tag: "Chunk"; requestId: string; values: PullResponse[] }
  | { _tag: "Exit"; requestId: string; exit: ExitEncoded }
  | { _tag: "Defect"; defect: string };

/** Effect's `Exit` JSON encoding, restricted to what we send. */
export type ExitEncoded =
  | { _tag: "Success"; value?: unknown }
  | { _tag: "Failure"; cause: CauseEncoded };

type CauseEncoded =
  | { _tag: "Fail"; error: SyncError }
  | { _tag: "Die"; defect: string }
  | { _tag: "Interrupt"; fiberId: { _tag: "None" } };

/** Server frame constructors. */
export const frames = {
  pong: (): ServerFrame => ({ _tag: "Pong" }),
  chunk: (requestId: string, value: PullResponse): ServerFrame => ({
    _tag: "Chunk",
    requestId,
    values: [value],
  }),
  /** Success; streams (pulls) end with no value (Effect's `Schema.Void`). */
  success: (requestId: string, value?: unknown): ServerFrame => ({
    _tag: "Exit",
    requestId,
    exit: value === undefined ? { _tag: "Success" } : { _tag: "Success", value },
  }),
  failure: (requestId: string, error: SyncError): ServerFrame => ({
    _tag: "Exit",
    requestId,
    exit: { _tag: "Failure", cause: { _tag: "Fail", error } },
  }),
  /** What Effect's RPC server sends for an undecodable payload or unknown tag. */
  die: (requestId: string, defect: string): ServerFrame => ({
    _tag: "Exit",
    requestId,
    exit: { _tag: "Failure", cause: { _tag: "Die", defect } },
  }),
  interrupted: (requestId: string): ServerFrame => ({
    _tag: "Exit",
    requestId,
    exit: { _tag: "Failure", cause: { _tag: "Interrupt", fiberId: { _tag: "None" } } },
  }),
  /** A frame we could not attribute to a request (bad JSON, unknown message). */
  defect: (defect: string): ServerFrame => ({ _tag: "Defect", defect }),
} as const;

/** Error constructors, named after the client's tagged errors. */
export const syncErrors = {
  serverAhead: (minimumExpectedNum: number, providedNum: number): SyncError => ({
    _tag: "ServerAheadError",
    minimumExpectedNum,
    providedNum,
  }),
  backendIdMismatch: (expected: string, received: string): SyncError => ({
    _tag: "BackendIdMismatchError",
    expected,
    received,
  }),
  unknown: (cause: string, note?: string): SyncError =>
    note === undefined ? { _tag: "UnknownError", cause } : { _tag: "UnknownError", cause, note },
} as const;

/** Summarises a zod error for a `Die` defect or log line (first issues only, no values). */
export function describeZodError(error: z.ZodError): string {
  return error.issues.slice(0, 3).map((issue) =>
    `${issue.path.join(".") || "(root)"}: ${issue.message}`
  )
    .join("; ");
}

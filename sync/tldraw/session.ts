/**
 * One client's session in a room, as the engine keeps it, and the socket it talks through.
 *
 * @module
 */
import type { SerializedSchema } from "@tldraw/store";
import type { ChunkAssembler } from "./chunks.ts";
import type { DataEvent, PushRequest, PushResultAction } from "./protocol.ts";

/** The transport a session needs: a WebSocket or anything shaped like one. */
export interface RoomSocket {
  readonly readyState: number;
  send(data: string): void;
  /**
   * Optional: `send` for a text whose UTF-8 size the caller already knows (a metered socket then
   * counts it without scanning the text again).
   */
  sendSized?(data: string, utf8Bytes: number): void;
  close(code?: number, reason?: string): void;
}

/** `WebSocket.OPEN`. */
export const OPEN = 1;

/** Where a session is in its life (spec 9.1). */
export const SessionState = {
  admitting: "admitting",
  awaiting_connect: "awaiting_connect",
  connected: "connected",
  awaiting_removal: "awaiting_removal",
  removed: "removed",
} as const;
/** One of the {@link SessionState} values. */
export type SessionState = (typeof SessionState)[keyof typeof SessionState];

/**
 * A push_result held back because an earlier push of the same session waits for its outcome from
 * the room's writer (results go out in push order, spec 5.4). `action` is set once known.
 */
export interface ResultSlot {
  origin: string | null;
  message: PushRequest;
  action?: PushResultAction;
}

/** A session of a room on this isolate. */
export interface Session {
  sessionId: string;
  socket: RoomSocket;
  state: SessionState;
  presenceId: string | null;
  isReadonly: boolean;
  meta: unknown;
  userId: string | undefined;
  startedAt: number;
  lastInteraction: number;
  /** The client's schema (kept as one object: StoreSchema caches migrations by identity). */
  schema: SerializedSchema | null;
  requiresDownMigrations: boolean;
  supportsStringAppend: boolean;
  requiresLegacyRejection: boolean;
  assembler: ChunkAssembler;
  outbox: DataEvent[];
  /** A data frame went out this batch window: later events wait in the outbox for its end. */
  batchOpen: boolean;
  removalTimer: ReturnType<typeof setTimeout> | null;
  /** Push results held back behind a forwarded push of this session (see ResultSlot). */
  resultSlots: ResultSlot[];
  /** Pending write of the session entry after a presence change (throttled). */
  presenceWriteTimer: ReturnType<typeof setTimeout> | null;
}

/** Closes a socket without a code (the client reconnects); never throws. */
export function safeClose(socket: RoomSocket): void {
  try {
    if (socket.readyState <= OPEN) socket.close();
  } catch {
    // Already closing.
  }
}

/** Closes a socket with `code` and `reason`; never throws. */
export function closeWith(socket: RoomSocket, code: number, reason: string): void {
  try {
    if (socket.readyState <= OPEN) socket.close(code, reason);
  } catch {
    // Already closing.
  }
}

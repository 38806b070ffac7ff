/**
 * One client's session in a room, as the engine keeps it, the socket it talks through, and the
 * phases of its life (spec 9.1) with the only transitions allowed between them.
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

/** What a client said about itself in its `connect` (spec 3.2). */
export interface ConnectedClient {
  /** The client's schema (kept as one object: StoreSchema caches migrations by identity). */
  schema: SerializedSchema;
  /** Its schema is older than the server's: what it gets is migrated down. */
  requiresDownMigrations: boolean;
  /** Protocol 8: diffs may use string appends. */
  supportsStringAppend: boolean;
}

/** Where a session is in its life (spec 9.1). */
export type SessionPhase =
  /** The socket is open; the room-wide session limit is being checked. */
  | { kind: "admitting" }
  /** Admitted: waits for the client's `connect`. */
  | { kind: "awaiting_connect" }
  /** Handshake done: gets patches and may push. */
  | { kind: "connected"; client: ConnectedClient }
  /** The socket is gone; the presence stays for the removal grace period. */
  | { kind: "awaiting_removal"; timer: ReturnType<typeof setTimeout> }
  /** Gone for good. */
  | { kind: "removed" };

/** The names of the phases (as reported to admins). */
export type SessionState = SessionPhase["kind"];

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
  readonly sessionId: string;
  readonly socket: RoomSocket;
  phase: SessionPhase;
  presenceId: string | null;
  readonly isReadonly: boolean;
  readonly meta: unknown;
  readonly userId: string | undefined;
  readonly startedAt: number;
  lastInteraction: number;
  /** A protocol 5/6 client: fatal errors go out as `incompatibility_error` (spec 9.3). */
  legacyRejection: boolean;
  readonly assembler: ChunkAssembler;
  outbox: DataEvent[];
  /** A data frame went out this batch window: later events wait in the outbox for its end. */
  batchOpen: boolean;
  /** Push results held back behind a forwarded push of this session (see ResultSlot). */
  resultSlots: ResultSlot[];
}

/** The connected client of `session`, or `undefined` in any other phase. */
export function connectedClient(session: Session): ConnectedClient | undefined {
  return session.phase.kind === "connected" ? session.phase.client : undefined;
}

/** Whether `session` is connected (takes patches, may push). */
export function isConnected(session: Session): boolean {
  return session.phase.kind === "connected";
}

/** Whether `session` still has a socket the room serves (admitted, and not on its way out). */
export function isLive(session: Session): boolean {
  switch (session.phase.kind) {
    case "admitting":
    case "awaiting_connect":
    case "connected":
      return true;
    case "awaiting_removal":
    case "removed":
      return false;
    default:
      return unreachable(session.phase);
  }
}

/** Admitted (room-wide limit checked): from `admitting` only. */
export function admitted(session: Session): boolean {
  if (session.phase.kind !== "admitting") return false;
  session.phase = { kind: "awaiting_connect" };
  return true;
}

/** Handshake done (or done again): from `awaiting_connect` or `connected`. */
export function connected(session: Session, client: ConnectedClient): boolean {
  const kind = session.phase.kind;
  if (kind !== "awaiting_connect" && kind !== "connected") return false;
  session.phase = { kind: "connected", client };
  return true;
}

/** The socket went away: wait out the removal grace period. From a live phase only. */
export function awaitingRemoval(
  session: Session,
  timer: () => ReturnType<typeof setTimeout>,
): boolean {
  if (!isLive(session)) return false;
  session.phase = { kind: "awaiting_removal", timer: timer() };
  return true;
}

/** Gone for good (from any phase); clears a pending removal timer. Returns whether it changed. */
export function removed(session: Session): boolean {
  const phase = session.phase;
  switch (phase.kind) {
    case "removed":
      return false;
    case "awaiting_removal":
      clearTimeout(phase.timer);
      break;
    case "admitting":
    case "awaiting_connect":
    case "connected":
      break;
    default:
      return unreachable(phase);
  }
  session.phase = { kind: "removed" };
  return true;
}

function unreachable(phase: never): never {
  throw new Error(`unknown session phase ${JSON.stringify(phase)}`);
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

/**
 * The sessions of a room on this isolate, from the socket's arrival to their removal: admission
 * (the room-wide session limit, checked against the store's session entries), the phases of each
 * session (session.ts), and their end — a close, a rejection (4099), the idle and connect
 * deadlines, and removal after a grace period. What sessions say and get is room_sessions.ts.
 *
 * @module
 */
import type { Logger } from "../../log.ts";
import { ChunkAssembler } from "./chunks.ts";
import {
  CloseReason,
  legacyReasonFor,
  SYNC_ERROR_CLOSE_CODE,
  type SyncCloseReason,
} from "./protocol.ts";
import type { RecordSchema } from "./push_plan.ts";
import type { RoomDocument } from "./room_document.ts";
import type { RoomHooks, RoomLimits, RoomTimeouts } from "./room_options.ts";
import type { RoomPresence } from "./room_presence.ts";
import {
  admitted,
  awaitingRemoval,
  closeWith,
  isConnected,
  OPEN,
  removed,
  type RoomSocket,
  safeClose,
  type Session,
  type SessionState,
} from "./session.ts";
import type { SessionSender } from "./session_sender.ts";

/** How a socket joins a room. */
export interface AttachOptions {
  sessionId: string;
  isReadonly: boolean;
  /** Host data about the session (e.g. the user), handed back in hooks. */
  meta?: unknown;
  userId?: string;
}

/** Options for {@link SessionRegistry}. */
export interface RegistryOptions {
  roomId: string;
  schema: RecordSchema;
  limits: RoomLimits;
  timeouts: RoomTimeouts;
  log: Logger;
  hooks: Pick<RoomHooks, "onSessionAdded" | "onSessionRemoved">;
  document: RoomDocument;
  presence: RoomPresence;
  sender: SessionSender;
}

/** The sessions of one room on this isolate, and their lifecycle. */
export class SessionRegistry {
  readonly #options: RegistryOptions;
  readonly #log: Logger;
  readonly #document: RoomDocument;
  readonly #presence: RoomPresence;
  readonly #sender: SessionSender;
  /** Admitted sessions by id (a reconnecting tab replaces its old session). */
  readonly #sessions = new Map<string, Session>();
  readonly #bySocket = new Map<RoomSocket, Session>();
  #pruneTimer: ReturnType<typeof setInterval> | null = null;
  #closed = false;

  constructor(options: RegistryOptions) {
    this.#options = options;
    this.#log = options.log;
    this.#document = options.document;
    this.#presence = options.presence;
    this.#sender = options.sender;
  }

  /** Sessions (any phase but removed). */
  get size(): number {
    return this.#sessions.size;
  }

  /** No socket is attached. */
  get empty(): boolean {
    return this.#sessions.size === 0 && this.#bySocket.size === 0;
  }

  /** The admitted sessions (a copy: callers may end sessions while iterating). */
  all(): Session[] {
    return [...this.#sessions.values()];
  }

  /** Whether `sessionId` is admitted here. */
  has(sessionId: string): boolean {
    return this.#sessions.has(sessionId);
  }

  /** The admitted session `sessionId`. */
  get(sessionId: string): Session | undefined {
    return this.#sessions.get(sessionId);
  }

  /** The session of `socket` (any phase, while the socket is attached). */
  bySocket(socket: RoomSocket): Session | undefined {
    return this.#bySocket.get(socket);
  }

  /** Summary of the sessions (for the host and tests). */
  list(): { sessionId: string; state: SessionState; isReadonly: boolean; meta: unknown }[] {
    return [...this.#sessions.values()].map((s) => ({
      sessionId: s.sessionId,
      state: s.phase.kind,
      isReadonly: s.isReadonly,
      meta: s.meta,
    }));
  }

  /**
   * Registers a socket whose `open` event has fired. The room-wide session limit is checked against
   * the store first (ROOM_FULL); frames that arrive meanwhile are handled afterwards, in order.
   */
  attach(socket: RoomSocket, options: AttachOptions): void {
    if (this.#closed) {
      safeClose(socket);
      return;
    }
    const now = Date.now();
    const session: Session = {
      sessionId: options.sessionId,
      socket,
      phase: { kind: "admitting" },
      presenceId: null,
      isReadonly: options.isReadonly,
      meta: options.meta,
      userId: options.userId,
      startedAt: now,
      lastInteraction: now,
      legacyRejection: false,
      assembler: new ChunkAssembler(this.#options.limits.maxMessageChars),
      outbox: [],
      batchOpen: false,
      resultSlots: [],
    };
    this.#bySocket.set(socket, session);
    void this.#document.schedule(async () => {
      try {
        await this.#admit(session);
      } catch (error) {
        // The store failed (KV unreachable): nothing was admitted; the client may retry.
        this.#log.error("session admission failed", { sessionId: session.sessionId, error });
        this.#bySocket.delete(socket);
        removed(session);
        closeWith(socket, SYNC_ERROR_CLOSE_CODE, CloseReason.UNKNOWN_ERROR);
      }
    });
  }

  async #admit(session: Session): Promise<void> {
    if (session.phase.kind !== "admitting") return; // closed while waiting
    const others = await this.#presence.admit(session.sessionId);
    if (others >= this.#options.limits.maxSessions) {
      this.#log.info("room full", { sessionId: session.sessionId, sessions: others });
      this.#bySocket.delete(session.socket);
      removed(session);
      closeWith(session.socket, SYNC_ERROR_CLOSE_CODE, CloseReason.ROOM_FULL);
      return;
    }
    await this.#presence.enter(session);
    const existing = this.#sessions.get(session.sessionId);
    if (!admitted(session)) {
      // The socket closed while we were writing the entry.
      this.#presence.leave(session);
      if (!existing) this.#presence.abandon(session.sessionId);
      return;
    }
    session.presenceId = existing?.presenceId ??
      this.#options.schema.presenceType?.createId() ?? null;
    if (existing) {
      // Same tab reconnecting: the old socket is stale. Its late close event is ignored because it
      // is no longer the session's socket (the reference's bug: it killed the new session).
      this.#sender.forget(existing);
      this.#presence.leave(existing);
      this.#bySocket.delete(existing.socket);
      removed(existing);
      if (existing.socket.readyState === OPEN) safeClose(existing.socket);
    }
    this.#sessions.set(session.sessionId, session);
    this.#startTimers();
    if (!existing) {
      this.#options.hooks.onSessionAdded?.({
        roomId: this.#options.roomId,
        sessionId: session.sessionId,
        meta: session.meta,
      });
    }
  }

  /**
   * Not the client's fault, so not a 4099 (which the client takes as fatal): the socket closes
   * without a code; the client reconnects, catches up and pushes its pending changes again.
   */
  reconnect(session: Session): void {
    if (!isConnected(session)) return;
    safeClose(session.socket);
    this.cancel(session);
  }

  /** The socket closed or errored. Ignored for sockets that were replaced by a reconnect. */
  handleClose(socket: RoomSocket): void {
    const session = this.#bySocket.get(socket);
    if (!session) return;
    this.#bySocket.delete(socket);
    if (session.phase.kind === "admitting") {
      removed(session);
      return;
    }
    if (this.#sessions.get(session.sessionId) !== session) return;
    this.cancel(session);
  }

  /** Closes a session, with 4099 + `reason` when given (kick), else a plain close (reconnect). */
  close(sessionId: string, reason?: SyncCloseReason): void {
    const session = this.#sessions.get(sessionId);
    if (!session) return;
    if (reason) this.reject(session, reason);
    else {
      safeClose(session.socket);
      this.remove(session);
    }
  }

  /**
   * The room closes: batched events (a push_result among them) go out before each close — an
   * acknowledged push must not be re-sent by a client that never saw its result — then every
   * socket closes (without a code unless `code` is given) and every session is removed.
   */
  closeAll(code?: number, reason?: string): void {
    this.#closed = true;
    const close = (socket: RoomSocket) =>
      code === undefined ? safeClose(socket) : closeWith(socket, code, reason ?? "");
    for (const session of [...this.#sessions.values()]) {
      this.#sender.flush(session);
      close(session.socket);
      this.remove(session, false);
    }
    for (const socket of [...this.#bySocket.keys()]) close(socket);
    this.#bySocket.clear();
    this.#stopTimers();
  }

  /** Socket gone: keep the presence for the removal grace period, then remove. */
  cancel(session: Session): void {
    const waited = awaitingRemoval(session, () =>
      setTimeout(() => {
        if (this.#sessions.get(session.sessionId) === session) this.remove(session);
      }, this.#options.timeouts.removal));
    if (!waited) return;
    this.#sender.forget(session);
    this.#presence.leave(session);
    session.outbox = [];
  }

  /** Gone for good: its entry and presence go (told to the others unless `broadcast` is false). */
  remove(session: Session, broadcast = true): void {
    if (!removed(session)) return;
    session.resultSlots = [];
    this.#sender.forget(session);
    this.#bySocket.delete(session.socket);
    if (this.#sessions.get(session.sessionId) !== session) return;
    this.#sessions.delete(session.sessionId);
    this.#presence.remove(session, broadcast);
    if (this.#sessions.size === 0) this.#stopTimers();
    this.#options.hooks.onSessionRemoved?.({
      roomId: this.#options.roomId,
      sessionId: session.sessionId,
      meta: session.meta,
      remaining: this.#sessions.size,
    });
  }

  /** Fatal error for one session: 4099 + reason (legacy clients: `incompatibility_error`). */
  reject(session: Session, reason: SyncCloseReason): void {
    if (session.phase.kind === "removed") return;
    this.#log.info("session rejected", { sessionId: session.sessionId, reason });
    if (session.legacyRejection) {
      this.#sender.flush(session);
      this.#sender.sendNow(session, {
        type: "incompatibility_error",
        reason: legacyReasonFor(reason),
      });
      safeClose(session.socket);
    } else {
      closeWith(session.socket, SYNC_ERROR_CLOSE_CODE, reason);
    }
    if (this.#sessions.get(session.sessionId) === session) this.remove(session);
    else {
      removed(session);
      this.#bySocket.delete(session.socket);
    }
  }

  #startTimers(): void {
    this.#pruneTimer ??= setInterval(() => this.#prune(), this.#options.timeouts.prune);
    this.#presence.start();
    this.#document.startPolling();
  }

  #stopTimers(): void {
    if (this.#pruneTimer !== null) clearInterval(this.#pruneTimer);
    this.#pruneTimer = null;
    this.#sender.stop();
    this.#presence.stop();
    this.#document.stopPolling();
  }

  /** Closes sessions past their connect deadline, idle ones, and ones whose socket is gone. */
  #prune(): void {
    const now = Date.now();
    const { connect, idle } = this.#options.timeouts;
    for (const session of [...this.#sessions.values()]) {
      const kind = session.phase.kind;
      if (kind === "awaiting_connect") {
        if (now - session.startedAt >= connect) {
          safeClose(session.socket);
          this.remove(session);
        }
      } else if (kind === "connected") {
        if (session.socket.readyState !== OPEN) this.cancel(session);
        else if (now - session.lastInteraction >= idle) {
          this.#log.info("session idle", { sessionId: session.sessionId });
          safeClose(session.socket);
          this.cancel(session);
        }
      }
    }
  }
}

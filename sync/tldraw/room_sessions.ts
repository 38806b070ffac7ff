/**
 * What the sessions of a room say and get: frames in (chunks, parsing), the connect handshake,
 * pushes submitted to the document and their answers, and what goes out to whom (session_sender.ts
 * batches it). The sessions implement the document's {@link DocumentSink} and the presence's
 * {@link PresenceSink}: everything those report reaches the clients here. Who the sessions are,
 * and how they end, is session_registry.ts.
 *
 * @module
 */
import type { Logger } from "../../log.ts";
import { ChunkError } from "./chunks.ts";
import { encodeConnectReply } from "./data_frame.ts";
import { jsonEqual } from "./diff.ts";
import { LocalPush, type LocalPushOwner } from "./local_push.ts";
import {
  type ClientMessage,
  clientMessageSchema,
  CloseReason,
  type ConnectRequest,
  type DataEvent,
  LimitReason,
  parsePush,
  type PushResultAction,
  type SyncCloseReason,
  type WireNetworkDiff,
} from "./protocol.ts";
import {
  type ForwardDiff,
  type PushPlan,
  type RecordSchema,
  SessionRejection,
  toNetworkDiff,
} from "./push_plan.ts";
import type { PushOutcome, PushRedirect } from "./queued_push.ts";
import type { DocumentChange, DocumentSink, RoomDocument } from "./room_document.ts";
import type { RoomHooks, RoomLimits, RoomTimeouts } from "./room_options.ts";
import type { PresenceSink, RoomPresence } from "./room_presence.ts";
import {
  connected,
  connectedClient,
  isConnected,
  OPEN,
  type RoomSocket,
  safeClose,
  type Session,
} from "./session.ts";
import { connectReply, negotiate } from "./session_handshake.ts";
import { type AttachOptions, SessionRegistry } from "./session_registry.ts";
import { SessionSender } from "./session_sender.ts";

export type { AttachOptions } from "./session_registry.ts";

/** Options for {@link RoomSessions}. */
export interface SessionsOptions {
  roomId: string;
  schema: RecordSchema;
  limits: RoomLimits;
  timeouts: RoomTimeouts;
  log: Logger;
  hooks: Pick<
    RoomHooks,
    "onSessionAdded" | "onSessionRemoved" | "onPushReceived" | "onPushAnswered"
  >;
  document: RoomDocument;
  presence: RoomPresence;
}

/** The sessions of one room on this isolate: what they say, and what they get. */
export class RoomSessions implements DocumentSink, PresenceSink, LocalPushOwner {
  readonly #options: SessionsOptions;
  readonly #log: Logger;
  readonly #document: RoomDocument;
  readonly #presence: RoomPresence;
  readonly #sender: SessionSender;
  readonly #registry: SessionRegistry;

  constructor(options: SessionsOptions) {
    this.#options = options;
    this.#log = options.log;
    this.#document = options.document;
    this.#presence = options.presence;
    this.#sender = new SessionSender({
      batchMs: options.timeouts.batch,
      log: options.log,
      clock: () => this.#document.clock,
      onPushAnswered: (push, action) => options.hooks.onPushAnswered?.(push, action),
    });
    this.#registry = new SessionRegistry({ ...options, sender: this.#sender });
  }

  /** Sessions (any phase but removed). */
  get size(): number {
    return this.#registry.size;
  }

  /** No socket is attached. */
  get empty(): boolean {
    return this.#registry.empty;
  }

  /** Summary of the sessions (for the host and tests). */
  list(): ReturnType<SessionRegistry["list"]> {
    return this.#registry.list();
  }

  /**
   * Registers a socket whose `open` event has fired. The room-wide session limit is checked against
   * the store first (ROOM_FULL); frames that arrive meanwhile are handled afterwards, in order.
   */
  attach(socket: RoomSocket, options: AttachOptions): void {
    this.#registry.attach(socket, options);
  }

  // ---------------------------------------------------------------------------------------------
  // Frames in

  /** Feeds one frame from a socket (text, or bytes decoded as UTF-8). */
  handleMessage(socket: RoomSocket, data: string | ArrayBuffer | Uint8Array): void {
    const session = this.#registry.bySocket(socket);
    if (!session || session.phase.kind === "removed") return;
    const text = typeof data === "string" ? data : new TextDecoder().decode(data);
    const result = session.assembler.push(text);
    if (result.kind === "pending") return;
    if (result.kind === "error") {
      this.#log.info("bad frame", { sessionId: session.sessionId, error: result.error });
      if (result.error === ChunkError.invalid_json) {
        this.#registry.reject(session, CloseReason.UNKNOWN_ERROR);
      } else if (result.error === ChunkError.too_large) {
        this.#registry.reject(session, LimitReason.MESSAGE_TOO_LARGE);
      } else {
        // The reference closes without a code (the client reconnects).
        safeClose(session.socket);
        this.#registry.cancel(session);
      }
      return;
    }
    const push = parsePush(result.data);
    const parsed = push
      ? { success: true as const, data: push }
      : clientMessageSchema.safeParse(result.data);
    if (!parsed.success) {
      this.#log.info("bad message", {
        sessionId: session.sessionId,
        type: (result.data as { type?: unknown })?.type,
      });
      this.#registry.reject(session, CloseReason.UNKNOWN_ERROR);
      return;
    }
    this.#dispatch(session, parsed.data);
  }

  #dispatch(session: Session, message: ClientMessage): void {
    switch (message.type) {
      case "ping":
        // Answered at once, outside the queue: pong may overtake queued data (spec 1.2).
        if (!isConnected(session)) return;
        session.lastInteraction = Date.now();
        this.#sender.sendNow(session, { type: "pong" });
        return;
      case "connect":
        void this.#document.schedule(() => this.#handshake(session, message));
        return;
      case "push":
        session.lastInteraction = Date.now();
        this.#options.hooks.onPushReceived?.(message);
        this.#document.submit(new LocalPush(this, session, message));
        return;
      default:
        return message satisfies never;
    }
  }

  /** The connect handshake (spec 3.2–3.3), in the room's queue. */
  async #handshake(session: Session, message: ConnectRequest): Promise<void> {
    const waiting = () =>
      session.phase.kind === "awaiting_connect" || session.phase.kind === "connected";
    if (!waiting()) return;
    const schema = this.#options.schema;
    const negotiation = negotiate(message, schema);
    session.legacyRejection = negotiation.legacyRejection;
    if (!negotiation.ok) return this.#registry.reject(session, negotiation.reason);
    // Other isolates may have committed since our last look: hydrate from the latest state.
    await this.#document.syncNow();
    if (!waiting()) return;
    let built;
    try {
      built = connectReply({
        message,
        client: negotiation.client,
        schema,
        clock: this.#document.clock,
        changes: this.#document.changesSince(message.lastServerClock),
        presence: this.#presence.othersFor(session),
        isReadonly: session.isReadonly,
        legacyAppend: this.legacyAppend,
      });
    } catch (error) {
      if (!(error instanceof SessionRejection)) throw error;
      return this.#registry.reject(session, error.reason);
    }
    connected(session, negotiation.client);
    session.lastInteraction = Date.now();
    this.#sender.flush(session);
    this.#sender.sendText(session, encodeConnectReply(built.reply, built.docPuts));
  }

  // ---------------------------------------------------------------------------------------------
  // Pushes out

  /** What became of a local push: its answer, and what the other sessions get. */
  settleLocal(push: LocalPush, outcome: PushOutcome): void {
    const { session } = push;
    switch (outcome.kind) {
      case "planned":
        return this.#finishPush(push, outcome.plan);
      case "rejected":
        return this.#registry.reject(session, outcome.reason);
      case "skipped":
      case "duplicate":
        // Rejected with an earlier push; or committed before and answered then.
        return;
      case "failed":
        if (!isConnected(session)) return;
        this.#log.error("push failed", { sessionId: session.sessionId, error: outcome.error });
        return this.#registry.reject(session, CloseReason.UNKNOWN_ERROR);
      case "abandoned":
        if (!isConnected(session)) return;
        this.#log.warn("push gave up after lost commit races", {
          sessionId: session.sessionId,
          attempts: outcome.attempts,
        });
        return this.#registry.reconnect(session);
      case "lost":
        return this.#registry.reconnect(session);
      case "committed_elsewhere":
        return this.#committedElsewhere(push, outcome.forward);
      case "discarded":
        if (!isConnected(session)) return;
        return this.#sender.answerPush(session, push.original, "discard", push.origin);
      default:
        return outcome satisfies never;
    }
  }

  /** A local push's outcome: its presence, its push_result and the patch for the others. */
  #finishPush(push: LocalPush, plan: PushPlan): void {
    const { session } = push;
    if (plan.presence) this.#presence.set(session, plan.presence.record);
    let action: PushResultAction;
    if (jsonEqual(plan.docDiff, push.message.diff)) action = "commit";
    else if (!plan.docDiff) action = "discard";
    else if (connectedClient(session)?.requiresDownMigrations) {
      const migrated = this.#diffFor(session, plan.docForward);
      if (!migrated) return;
      action = { rebaseWithDiff: migrated };
    } else action = { rebaseWithDiff: plan.docDiff };
    this.#sender.answerPush(session, push.original, action, push.origin);
    if (plan.docDiff || plan.presence) {
      this.#broadcast(
        {
          puts: { ...plan.docForward.puts, ...plan.presence?.forward.puts },
          deletes: plan.docForward.deletes,
        },
        session,
        { ...plan.docDiff, ...plan.presence?.diff },
      );
    }
  }

  /** The writer committed a push this isolate forwarded: the others get its step, it its result. */
  #committedElsewhere(push: LocalPush, forward: ForwardDiff): void {
    const { session } = push;
    this.#broadcast(forward, session, undefined, true);
    // The pusher's result: `commit` when the step is what it pushed (spec 5.1).
    const diff = this.#diffFor(session, forward);
    if (!diff || push.origin === undefined) return;
    const action: PushResultAction = jsonEqual(diff, push.message.diff)
      ? "commit"
      : { rebaseWithDiff: diff };
    this.#sender.settleSlot(session, push.origin, action);
  }

  /**
   * The room's writer is another isolate: the push's presence is applied here and now (it never
   * touches the clock), its document ops go to the writer, and its push_result waits for them.
   */
  redirectLocal(push: LocalPush, sender: PushRedirect): void {
    const { session } = push;
    if (!isConnected(session)) return;
    if (push.message.presence && push.origin === undefined && !this.#presenceNow(push)) return;
    const diff = push.message.diff;
    if (!diff || Object.keys(diff).length === 0 || session.isReadonly) {
      // Nothing for the writer (read-only ops are dropped): `commit` only when there were none.
      const action = diff === undefined ? "commit" : "discard";
      return this.#sender.answerPush(session, push.original, action, push.origin);
    }
    if (push.origin === undefined) {
      const origin = sender.newOrigin();
      session.resultSlots.push({ origin, message: push.original });
      push.forwardedAs(origin);
    }
    sender.send(push);
  }

  /** Applies the presence part of a push now; `false` when that rejected the session. */
  #presenceNow(push: LocalPush): boolean {
    try {
      const plan = this.#document.plan(push.client, { ...push.message, diff: undefined });
      if (plan.presence) {
        this.#presence.set(push.session, plan.presence.record);
        this.#broadcast(plan.presence.forward, push.session, plan.presence.diff);
      }
      return true;
    } catch (error) {
      if (!(error instanceof SessionRejection)) throw error;
      this.#registry.reject(push.session, error.reason);
      return false;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Sinks: what the document and presence report

  get legacyAppend(): boolean {
    for (const session of this.#registry.all()) {
      if (connectedClient(session)?.supportsStringAppend === false) return true;
    }
    return false;
  }

  changed(change: DocumentChange): void {
    this.#broadcast(change.forward, null, change.diff, change.step);
  }

  replaced(): void {
    for (const session of this.#registry.all()) this.#registry.reconnect(session);
  }

  holdFrames(): void {
    this.#sender.hold();
  }

  releaseFrames(): void {
    this.#sender.release();
  }

  presenceChanged(forward: ForwardDiff): void {
    this.#broadcast(forward, null);
  }

  hasSession(sessionId: string): boolean {
    return this.#registry.has(sessionId);
  }

  /**
   * Sends a change to every connected session except `except`, migrated down where needed.
   * `allowEmpty`: a step of another isolate whose records all changed again later is empty, but
   * still sent: sessions see every clock, in order (invariant 2).
   */
  #broadcast(
    forward: ForwardDiff,
    except: Session | null,
    network?: WireNetworkDiff,
    allowEmpty = false,
  ): void {
    let unmigrated = network;
    // One event object for every session that takes the unmigrated diff: serialized once.
    let shared: DataEvent | undefined;
    const legacyAppend = this.legacyAppend;
    const clock = this.#document.clock;
    for (const session of this.#registry.all()) {
      if (session === except) continue;
      const client = connectedClient(session);
      if (!client) continue;
      if (session.socket.readyState !== OPEN) {
        this.#registry.cancel(session);
        continue;
      }
      if (client.requiresDownMigrations) {
        const diff = this.#diffFor(session, forward);
        if (!diff) continue; // session rejected
        if (Object.keys(diff).length === 0 && !allowEmpty) continue;
        this.#sender.sendData(session, { type: "patch", diff, serverClock: clock });
        continue;
      }
      const diff = unmigrated ??= toNetworkDiff(forward, legacyAppend);
      if (Object.keys(diff).length === 0 && !allowEmpty) continue;
      this.#sender.sendData(session, shared ??= { type: "patch", diff, serverClock: clock });
    }
  }

  /** `forward` for `session` (migrated down when it is older); rejects it if that fails. */
  #diffFor(session: Session, forward: ForwardDiff): WireNetworkDiff | undefined {
    const client = connectedClient(session);
    try {
      return this.#options.schema.diffFor(
        forward,
        client?.requiresDownMigrations ? client.schema : null,
        this.legacyAppend,
      );
    } catch (error) {
      if (error instanceof SessionRejection) {
        this.#registry.reject(session, error.reason);
        return undefined;
      }
      throw error;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Messages and the end of sessions

  /** Sends an application message to one connected session. */
  sendCustom(sessionId: string, data: unknown): void {
    const session = this.#registry.get(sessionId);
    if (session && isConnected(session)) this.#sender.sendNow(session, { type: "custom", data });
  }

  /** The socket closed or errored. Ignored for sockets that were replaced by a reconnect. */
  handleClose(socket: RoomSocket): void {
    this.#registry.handleClose(socket);
  }

  /** Closes a session, with 4099 + `reason` when given (kick), else a plain close (reconnect). */
  close(sessionId: string, reason?: SyncCloseReason): void {
    this.#registry.close(sessionId, reason);
  }

  /** The room closes: every socket closes (with `code` when given), every session is removed. */
  closeAll(code?: number, reason?: string): void {
    this.#registry.closeAll(code, reason);
  }
}

/**
 * A push of a session on this isolate, as it waits in the room's queue: planned and committed by
 * the document like any {@link QueuedPush}, settled by the sessions part (which answers the client
 * and tells the other sessions), or handed to the room's writer when another isolate is it.
 *
 * @module
 */
import type { PlanSession } from "./push_plan.ts";
import type { PushRequest } from "./protocol.ts";
import type { PushOutcome, PushRedirect, SendablePush } from "./queued_push.ts";
import { connectedClient, isConnected, type Session } from "./session.ts";

/** What settles local pushes (room_sessions.ts). */
export interface LocalPushOwner {
  settleLocal(push: LocalPush, outcome: PushOutcome): void;
  redirectLocal(push: LocalPush, sender: PushRedirect): void;
}

/** A push of a local session. */
export class LocalPush implements SendablePush {
  readonly #owner: LocalPushOwner;
  readonly session: Session;
  /** The push as the client sent it (its push_result answers this). */
  readonly original: PushRequest;
  #message: PushRequest;
  #origin: string | undefined;

  constructor(owner: LocalPushOwner, session: Session, message: PushRequest) {
    this.#owner = owner;
    this.session = session;
    this.original = message;
    this.#message = message;
  }

  get message(): PushRequest {
    return this.#message;
  }

  get origin(): string | undefined {
    return this.#origin;
  }

  get sessionId(): string {
    return this.session.sessionId;
  }

  get key(): unknown {
    return this.session;
  }

  get client(): PlanSession {
    const client = connectedClient(this.session);
    return {
      isReadonly: this.session.isReadonly,
      presenceId: this.session.presenceId,
      clientSchema: client?.requiresDownMigrations ? client.schema : null,
    };
  }

  get forwardable(): boolean {
    return !connectedClient(this.session)?.requiresDownMigrations;
  }

  live(): boolean {
    return isConnected(this.session);
  }

  settle(outcome: PushOutcome): void {
    this.#owner.settleLocal(this, outcome);
  }

  redirect(sender: PushRedirect): void {
    this.#owner.redirectLocal(this, sender);
  }

  /**
   * Forwarded to the writer as `origin`: its presence was applied here, so from now on only its
   * document ops are planned (wherever it is committed in the end).
   */
  forwardedAs(origin: string): void {
    this.#origin = origin;
    const { clientClock, diff } = this.original;
    this.#message = { type: "push", clientClock, ...(diff === undefined ? {} : { diff }) };
  }
}

/**
 * A push waiting in a room's queue, whoever sent it: a session on this isolate (local_push.ts) or
 * another isolate that forwarded it to this one as the room's writer (forward_taker.ts). The
 * document plans and commits pushes without knowing which; each push carries its own reply and
 * learns what became of it through {@link QueuedPush.settle}.
 *
 * @module
 */
import type { ForwardDiff, PlanSession, PushPlan } from "./push_plan.ts";
import type { PushRequest, SyncCloseReason } from "./protocol.ts";
import type { RoomStoreError } from "./room_store.ts";

/** What became of a queued push. */
export type PushOutcome =
  /**
   * Planned against the document: its change was committed as `clock` (the cache has it), or it
   * changed nothing in the document (`clock` undefined: presence only, or a no-op).
   */
  | { kind: "planned"; plan: PushPlan; clock: number | undefined }
  /** Invalid: its session is closed with `reason` (it changed nothing). */
  | { kind: "rejected"; reason: SyncCloseReason }
  /** An earlier push of the same client was rejected in its group (it changed nothing). */
  | { kind: "skipped" }
  /** Its origin was committed already, as `clock` (a copy of a forwarded push). */
  | { kind: "duplicate"; clock: number }
  /** The store failed (e.g. KV unreachable): nothing was committed. */
  | { kind: "failed"; error: RoomStoreError }
  /** It kept losing commit races to other isolates for too long: nothing was committed. */
  | { kind: "abandoned"; attempts: number }
  /** Forwarded to the writer, which committed it as `clock`; `forward` is that step's change. */
  | { kind: "committed_elsewhere"; forward: ForwardDiff; clock: number }
  /** Forwarded to the writer, which found it changed nothing. */
  | { kind: "discarded" }
  /** Forwarded, and whether the writer committed it can no longer be told (its client resends). */
  | { kind: "lost" };

/** One of the {@link PushOutcome} kinds. */
export type PushOutcomeKind = PushOutcome["kind"];

/** A push in a room's queue. */
export interface QueuedPush {
  /** The push as it is planned (after forwarding: its document ops only). */
  readonly message: PushRequest;
  /** Who pushes, as planning sees it. */
  readonly client: PlanSession;
  /** Pushes with the same key come from one client: after one is rejected, the rest are skipped. */
  readonly key: unknown;
  /** Set once the push was (or may have been) forwarded: the step carries it (forwarding.ts). */
  readonly origin: string | undefined;
  /** Whether anyone still waits for it (its session is connected). */
  live(): boolean;
  /** What became of it; called once per planning round, in queue order. */
  settle(outcome: PushOutcome): void;
  /**
   * This isolate is not the room's writer: a local push goes to `sender` (which sends it to the
   * writer), a push forwarded here is refused back to its isolate.
   */
  redirect(sender: PushRedirect): void;
}

/** A push of a session on this isolate, as forwarding sees it. */
export interface SendablePush extends QueuedPush {
  readonly sessionId: string;
  /** `false`: it must be committed here (its session needs answers migrated down). */
  readonly forwardable: boolean;
}

/** Where {@link QueuedPush.redirect} hands a local push (forward_sender.ts). */
export interface PushRedirect {
  /** A new origin id for a push about to be forwarded. */
  newOrigin(): string;
  /** Queues `push` (with its origin set) for the room's writer. */
  send(push: SendablePush): void;
}

/**
 * Forwarding, the writer's side (forwarding.ts has the rules and the wire messages): pushes other
 * isolates forward to this one join the room's queue as {@link ForwardedPush}es, are planned and
 * committed like local ones, and settle into replies: a commit needs none (it is in the change log,
 * which is where its isolate answers it from), discards and rejections go back on the bus, one
 * reply per batch when the group is done ({@link ForwardTaker.flush}).
 *
 * @module
 */
import {
  type ForwardMessage,
  ForwardReplies,
  ForwardTimeouts,
  type OriginIndex,
} from "./forwarding.ts";
import type { ForwardDiff, PlanSession } from "./push_plan.ts";
import { CloseReason, type PushRequest, type WireNetworkDiff } from "./protocol.ts";
import type { PushOutcome, QueuedPush } from "./queued_push.ts";

/** Where the taker reports. */
export interface TakerSink {
  /** A message for another isolate of the room (on the room's link). */
  publish(message: ForwardMessage): void;
  /** Queues a forwarded push for the room's next group. */
  submit(push: QueuedPush): void;
  /** Catches up from the store before the next group (the pushes were planned on a later clock). */
  catchUp(): void;
  /** A forwarded push changed the document here: the local sessions get the change. */
  changed(forward: ForwardDiff, diff: WireNetworkDiff | undefined): void;
}

// Forwarded pushes are planned as a client on the current schema with no presence.
const FORWARDED_CLIENT: PlanSession = { isReadonly: false, presenceId: null, clientSchema: null };

/** A push another isolate forwarded to this one (the room's writer) to commit. */
export class ForwardedPush implements QueuedPush {
  readonly client = FORWARDED_CLIENT;
  readonly key: string;

  constructor(
    readonly taker: ForwardTaker,
    readonly from: string,
    readonly batch: number,
    readonly session: string,
    readonly origin: string,
    readonly message: PushRequest,
  ) {
    this.key = `${from}\0${session}`;
  }

  live(): boolean {
    return true;
  }

  settle(outcome: PushOutcome): void {
    this.taker.settle(this, outcome);
  }

  redirect(): void {
    this.taker.refuse(this);
  }
}

/** The writer's side of forwarding for one room on one isolate. */
export class ForwardTaker {
  readonly #isolateId: string;
  readonly #origins: OriginIndex;
  readonly #clock: () => number;
  readonly #sink: TakerSink;
  /** Origins of forwarded pushes queued here, to be committed. */
  readonly #queued = new Set<string>();
  readonly #replies = new ForwardReplies();
  /** Batches this isolate will not commit (it is not the writer any more), by isolate and batch. */
  readonly #refused = new Map<string, { to: string; batch: number }>();
  /** When another isolate last forwarded pushes here (epoch ms). */
  #tookAt = 0;

  /** `origins`: the origins this isolate saw committed; `clock`: the room's clock. */
  constructor(isolateId: string, origins: OriginIndex, clock: () => number, sink: TakerSink) {
    this.#isolateId = isolateId;
    this.#origins = origins;
    this.#clock = clock;
    this.#sink = sink;
  }

  /**
   * Other isolates forward this room's pushes here (this isolate took some in the last
   * {@link ForwardTimeouts.writerLease}): their next ones are probably on the way.
   */
  takesForwarded(now = Date.now()): boolean {
    return now - this.#tookAt < ForwardTimeouts.writerLease;
  }

  /** Pushes forwarded to this isolate as the room's writer: they join the next group. */
  take(message: Extract<ForwardMessage, { kind: "push" }>): void {
    const { from, batch } = message;
    this.#tookAt = Date.now();
    if (message.base < this.#origins.completeFrom) {
      // This isolate cannot tell whether the pushes were committed before it loaded the room.
      this.#sink.publish({ kind: "refused", to: from, from: this.#isolateId, batch });
      return;
    }
    // The pushes were made on top of `base`: plan them against it or later (a catch-up queued
    // now runs before their group).
    if (message.base > this.#clock()) this.#sink.catchUp();
    let committed = 0;
    for (const push of message.pushes) {
      // Committed before (a copy of a batch it took already): its isolate reads that in the log.
      const clock = this.#origins.clockOf(push.origin);
      if (clock !== undefined) committed = Math.max(committed, clock);
      else if (!this.#queued.has(push.origin)) {
        this.#queued.add(push.origin);
        this.#sink.submit(
          new ForwardedPush(this, from, batch, push.session, push.origin, {
            type: "push",
            clientClock: 0,
            diff: push.diff,
          }),
        );
      }
    }
    if (committed > 0) {
      // The forwarder missed those commits: it is told the clock (its catch-up answers them).
      this.#sink.publish({
        kind: "result",
        to: from,
        from: this.#isolateId,
        batch,
        clock: this.#clock(),
        outcomes: [],
      });
    }
  }

  /** What became of a forwarded push: the reply its isolate gets (none for a commit). */
  settle(push: ForwardedPush, outcome: PushOutcome): void {
    this.#queued.delete(push.origin);
    const { origin } = push;
    switch (outcome.kind) {
      case "planned":
        if (outcome.clock === undefined) {
          this.#replies.add(push, { origin, discarded: this.#clock() });
        } else this.#sink.changed(outcome.plan.docForward, outcome.plan.docDiff);
        return;
      case "rejected":
        this.#replies.add(push, { origin, rejected: outcome.reason });
        return;
      case "skipped":
        // An earlier push of its session was rejected (which ends the session there).
        this.#replies.add(push, { origin, rejected: CloseReason.UNKNOWN_ERROR });
        return;
      case "duplicate":
      case "failed":
      case "abandoned":
      case "committed_elsewhere":
      case "discarded":
      case "lost":
        // Committed before (its isolate reads it in the log), or not at all: its isolate gives up
        // waiting and commits it itself.
        return;
      default:
        outcome satisfies never;
    }
  }

  /** A forwarded push this isolate will not commit (it is not the writer any more). */
  refuse(push: ForwardedPush): void {
    this.#queued.delete(push.origin);
    this.#refused.set(`${push.from}\0${push.batch}`, { to: push.from, batch: push.batch });
  }

  /** Sends the replies collected since the last flush (after each group). */
  flush(): void {
    for (const { to, batch } of this.#refused.values()) {
      this.#sink.publish({ kind: "refused", to, from: this.#isolateId, batch });
    }
    this.#refused.clear();
    for (const message of this.#replies.messages(this.#isolateId, this.#clock())) {
      this.#sink.publish(message);
    }
  }
}

/**
 * Forwarding, the sending side (forwarding.ts has the rules and the wire messages): while another
 * isolate is the room's writer, this isolate's pushes go there instead of racing it for the clock.
 * The sender keeps them in order (one batch in flight), re-sends a batch the writer seems to have
 * missed, and gives up on a silent writer: then the pushes are committed here (the document's
 * {@link SenderSink.fallBack}). Outcomes come back as log steps (committed), as bus replies
 * (discarded, rejected), or not at all (lost); each is settled on its push.
 *
 * @module
 */
import { utf8Length } from "../utf8.ts";
import {
  Forwarder,
  type ForwardItem,
  type ForwardMessage,
  type ForwardOutcome,
  ForwardTimeouts,
  MAX_FORWARD_BATCH_BYTES,
} from "./forwarding.ts";
import type { PushRedirect, SendablePush } from "./queued_push.ts";
import type { RoomWriter } from "./room_store.ts";

/** Where the sender reports. */
export interface SenderSink {
  /** A message for the room's writer (on the room's link). */
  publish(message: ForwardMessage): void;
  /**
   * The writer does not answer (or cannot take a push): catch up, then commit what
   * {@link ForwardSender.takeForFallback} returns, then call {@link ForwardSender.fallbackDone}.
   */
  fallBack(): void;
}

// How often a room with pushes out at the writer checks on them.
const TICK_MS = 50;

/** The sending side of forwarding for one room on one isolate. */
export class ForwardSender implements PushRedirect {
  readonly #isolateId: string;
  readonly #clock: () => number;
  readonly #sink: SenderSink;
  /** Pushes for (or sent to) the writer. */
  readonly #forwarder: Forwarder<SendablePush>;
  /** Forwarded pushes whose outcome is not known yet, by origin. */
  readonly #awaiting = new Map<string, ForwardItem<SendablePush>>();
  /** Origins of this room's forwarded pushes: a random prefix (this instance) and a sequence. */
  readonly #originPrefix = crypto.randomUUID().slice(0, 8) + ":";
  #seq = 0;
  #timer: ReturnType<typeof setInterval> | null = null;
  #fallingBack = false;
  /** After giving up on the writer, commit here until then (epoch ms). */
  #directUntil = 0;

  /** `clock`: the room's clock (the base of a batch). */
  constructor(isolateId: string, clock: () => number, sink: SenderSink) {
    this.#isolateId = isolateId;
    this.#clock = clock;
    this.#sink = sink;
    this.#forwarder = new Forwarder(isolateId);
  }

  /** Pushes wait at (or for) the writer. */
  get busy(): boolean {
    return this.#forwarder.busy;
  }

  /** Pushes go to `writer` (or wait behind ones that went there) rather than being committed here. */
  active(writer: RoomWriter | undefined, now = Date.now()): boolean {
    if (this.#forwarder.busy) return true;
    if (now < this.#directUntil) return false;
    return writer !== undefined && writer.isolateId !== this.#isolateId &&
      now - writer.at < ForwardTimeouts.writerLease;
  }

  newOrigin(): string {
    return `${this.#originPrefix}${(++this.#seq).toString(36)}`;
  }

  send(push: SendablePush): void {
    const origin = push.origin;
    const diff = push.message.diff;
    if (origin === undefined || diff === undefined) {
      throw new Error("a forwarded push needs an origin and document ops");
    }
    const bytes = utf8Length(JSON.stringify(diff));
    const item: ForwardItem<SendablePush> = {
      origin,
      push,
      sessionId: push.sessionId,
      message: push.message,
      diff,
      bytes,
      forwardable: push.forwardable && bytes <= MAX_FORWARD_BATCH_BYTES,
    };
    this.#awaiting.set(origin, item);
    this.#forwarder.enqueue(item);
  }

  /** Sends the next batch to `writer` when none is in flight (or commits here what cannot go). */
  pump(writer: string | undefined): void {
    if (this.#fallingBack) return;
    if (!writer || writer === this.#isolateId) {
      if (this.#forwarder.busy && this.#forwarder.target === undefined) this.#fallBack();
      return;
    }
    const next = this.#forwarder.next(writer, this.#clock(), Date.now());
    if (next === "direct") this.#fallBack();
    else if (next) {
      this.#sink.publish(next);
      this.#timer ??= setInterval(() => this.#tick(), TICK_MS);
    }
  }

  #tick(): void {
    const due = this.#forwarder.due(Date.now());
    if (!this.#forwarder.busy && this.#timer !== null) {
      clearInterval(this.#timer);
      this.#timer = null;
    }
    if (due === "give_up") this.#fallBack();
    else if (due === "resend") {
      // The batch may be lost, or its commits' notices: the writer answers a copy either way
      // (it commits what it did not get, and tells the clock of what it committed).
      const again = this.#forwarder.resend(this.#clock(), Date.now());
      if (again) this.#sink.publish(again);
    }
  }

  #fallBack(): void {
    if (this.#fallingBack) return;
    this.#fallingBack = true;
    this.#directUntil = Date.now() + ForwardTimeouts.direct;
    this.#sink.fallBack();
  }

  /**
   * Every push still waiting (in order), for the document to commit here; those whose session is
   * gone are dropped. Nothing waits at the writer afterwards.
   */
  takeForFallback(): SendablePush[] {
    const pushes: SendablePush[] = [];
    for (const item of this.#forwarder.takeAll()) {
      this.#awaiting.delete(item.origin);
      if (item.push.live()) pushes.push(item.push);
    }
    return pushes;
  }

  /** The fallback's pushes were handled: forwarding may start again. */
  fallbackDone(): void {
    this.#fallingBack = false;
  }

  /** `isolateId` showed signs of life in the room (its commit notice, a message). */
  heardFrom(isolateId: string): void {
    this.#forwarder.heardFrom(isolateId, Date.now());
  }

  /** The writer refused `batch` (it cannot tell what it committed before it loaded the room). */
  refused(batch: number): void {
    if (this.#forwarder.isInFlight(batch)) this.#fallBack();
  }

  /** `isolateId` stopped serving the room. */
  resigned(isolateId: string): void {
    if (this.#forwarder.target === isolateId) this.#fallBack();
  }

  /**
   * The writer's outcomes for pushes this isolate forwarded. Committed ones are settled when their
   * step is applied (in clock order, among the patches); a discard changes nothing, so it is
   * settled at once (its session's later results wait behind it, spec 5.4).
   */
  takeOutcomes(outcomes: readonly ForwardOutcome[]): void {
    for (const outcome of outcomes) {
      const item = this.#forwarder.pending(outcome.origin);
      if (!item) continue;
      if ("rejected" in outcome) {
        this.#resolve(item);
        item.push.settle({ kind: "rejected", reason: outcome.rejected });
      } else if ("discarded" in outcome) this.#discard(item);
    }
  }

  /**
   * A step of another isolate with `origin` was applied. When it is a push this isolate forwarded,
   * that push is returned (the caller settles it with the step's change). Pushes sent before it in
   * its batch that were not committed were discarded (forwarding.ts).
   */
  stepApplied(origin: string): SendablePush | undefined {
    const item = this.#awaiting.get(origin);
    if (!item) return undefined;
    for (const before of this.#forwarder.unansweredBefore(item.origin)) this.#discard(before);
    this.#resolve(item);
    return item.push;
  }

  /**
   * Steps were skipped (rebuilt without their origins, or not read at all): whether a push waiting
   * here was committed can no longer be told from the log. Returns those pushes: none is answered
   * or committed again (their clients reconnect and push their changes again, spec 4.5).
   */
  forget(): SendablePush[] {
    const items = [...this.#awaiting.values(), ...this.#forwarder.takeAll()];
    this.#awaiting.clear();
    return [...new Set(items.map((item) => item.push))];
  }

  /** Stops the timer (the room closed). */
  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  #discard(item: ForwardItem<SendablePush>): void {
    this.#resolve(item);
    item.push.settle({ kind: "discarded" });
  }

  /** A forwarded push whose outcome is known: nothing waits for it any more. */
  #resolve(item: ForwardItem<SendablePush>): void {
    this.#awaiting.delete(item.origin);
    this.#forwarder.resolve(item.origin);
  }
}

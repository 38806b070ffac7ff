/**
 * Forwarding pushes to a room's writer: when the sessions of one room are spread over several
 * isolates, each committing its own pushes makes them race for the room's clock (a loser catches
 * up, re-validates and retries, and under load keeps losing: measured, 200 rooms × 5 clients
 * spread over 2 isolates delivered a third of what one isolate does). Instead the isolate that
 * committed last — the room's *writer*, named in the room's meta with the time of its commit —
 * commits for everyone while that is recent: the others send it the document part of their pushes
 * over the bus and learn the outcome from the KV change log, like any other commit.
 *
 * Nothing here is needed for correctness, only for speed; the rules that keep it exactly-once:
 *
 * * Every forwarded push gets an `origin` id that its commit carries into the change log, whoever
 *   commits it. An isolate that applies a logged step answers the push waiting for that origin.
 * * The writer commits a forwarded push only with its usual clock check, and never when its
 *   {@link OriginIndex} (every origin in the steps it applied or committed) already has it. The
 *   index must be complete from the forwarder's clock, the `base` of the batch: otherwise the batch
 *   is refused.
 * * A forwarder that hears nothing re-sends, then gives up and commits the pushes itself (after
 *   catching up: its own index is complete from its base, and its clock check fails if the writer
 *   committed meanwhile). It is then the writer.
 * * Outcomes that leave no trace in the log (discarded, rejected) come back in a bus reply; a lost
 *   reply is repaired by the re-send (the writer answers again from its index or re-plans).
 * * At most one batch per room is in flight from one isolate, so pushes keep their order.
 *
 * @module
 */
import { isJsonObject, type Json } from "../bus/bus.ts";
import type { PushRequest, SyncCloseReason, WireNetworkDiff } from "./protocol.ts";

/**
 * Timers of forwarding (milliseconds). A batch waits while its writer is heard from (its commits
 * in the room, its replies): under load a batch queues there for longer than a lost message takes
 * to notice, and re-sending or giving up then only adds load.
 */
export const ForwardTimeouts = {
  /** No outcome this long after sending, and the writer silent as long: send it again. */
  resend: 300,
  /** No outcome this long after sending, even while the writer is heard from: send it again. */
  resendBusy: 2_000,
  /** No outcome this long after the first send, and the writer silent: commit the pushes here. */
  giveUp: 1_200,
  /** No outcome this long after the first send, whatever the writer does: commit them here. */
  giveUpBusy: 10_000,
  /** A writer whose last commit is older than this is not forwarded to (it may be gone). */
  writerLease: 2_000,
  /** After giving up, commit here for this long before forwarding again. */
  direct: 2_000,
} as const;

/** Most UTF-8 bytes of pushes in one batch (bus messages stay below 7,000 bytes). */
export const MAX_FORWARD_BATCH_BYTES = 5_000;
/** Most pushes in one batch (so that the writer's reply, one outcome each, stays small too). */
const MAX_FORWARD_BATCH_PUSHES = 40;

/** One forwarded push: its document ops, and the session it came from (rejections end it). */
export interface ForwardedPush {
  origin: string;
  session: string;
  diff: WireNetworkDiff;
}

/** What a forwarded push came to, as the writer reports it. */
export type ForwardOutcome =
  | { origin: string; committed: number }
  | { origin: string; discarded: number }
  | { origin: string; rejected: SyncCloseReason };

/** Messages between a room's isolates on the bus topic `tldraw-fwd:<roomId>`. */
export type ForwardMessage =
  /** Pushes for the writer `to`, planned against `base` or later. */
  | { kind: "push"; to: string; from: string; batch: number; base: number; pushes: ForwardedPush[] }
  /** The writer's outcomes for (some of) a batch; `clock`: the writer's clock after them. */
  | {
    kind: "result";
    to: string;
    from: string;
    batch: number;
    clock: number;
    outcomes: ForwardOutcome[];
  }
  /** The writer cannot take the batch (its origin index does not reach back to `base`). */
  | { kind: "refused"; to: string; from: string; batch: number }
  /** `from` stops serving the room: forward to it no more. */
  | { kind: "resign"; from: string };

/** `body` as a {@link ForwardMessage}, or `null` when it is not one (a bus may carry anything). */
export function parseForwardMessage(body: Json): ForwardMessage | null {
  if (!isJsonObject(body)) return null;
  const { kind, from } = body;
  if (typeof from !== "string") return null;
  if (kind === "resign") return { kind, from };
  const { to, batch } = body;
  if (typeof to !== "string" || typeof batch !== "number") return null;
  if (kind === "refused") return { kind, to, from, batch };
  if (kind === "push") {
    const { base, pushes } = body;
    if (typeof base !== "number" || !Array.isArray(pushes)) return null;
    const parsed: ForwardedPush[] = [];
    for (const push of pushes) {
      if (!isJsonObject(push)) return null;
      const { origin, session, diff } = push;
      if (typeof origin !== "string" || typeof session !== "string") return null;
      if (!isJsonObject(diff)) return null;
      parsed.push({ origin, session, diff: diff as unknown as WireNetworkDiff });
    }
    return { kind, to, from, batch, base, pushes: parsed };
  }
  if (kind === "result") {
    const { clock, outcomes } = body;
    if (typeof clock !== "number" || !Array.isArray(outcomes)) return null;
    const parsed: ForwardOutcome[] = [];
    for (const outcome of outcomes) {
      if (!isJsonObject(outcome)) return null;
      const { origin, committed, discarded, rejected } = outcome;
      if (typeof origin !== "string") return null;
      if (typeof committed === "number") parsed.push({ origin, committed });
      else if (typeof discarded === "number") parsed.push({ origin, discarded });
      else if (typeof rejected === "string") {
        parsed.push({ origin, rejected: rejected as SyncCloseReason });
      } else return null;
    }
    return { kind, to, from, batch, clock, outcomes: parsed };
  }
  return null;
}

/** Origins kept before the oldest half is forgotten (see {@link OriginIndex.completeFrom}). */
const MAX_ORIGINS = 20_000;

/**
 * The origins of the steps a room applied or committed, with their clocks. Complete for every
 * clock after {@link completeFrom}: a forwarded push whose origin is not here was not committed
 * after that clock.
 */
export class OriginIndex {
  readonly #clocks = new Map<string, number>();
  #completeFrom: number;

  constructor(completeFrom: number) {
    this.#completeFrom = completeFrom;
  }

  /** Steps after this clock are all indexed. */
  get completeFrom(): number {
    return this.#completeFrom;
  }

  add(origin: string, clock: number): void {
    this.#clocks.set(origin, clock);
    if (this.#clocks.size <= MAX_ORIGINS) return;
    // Clocks were added in increasing order: forget the oldest half.
    let dropped = 0;
    for (const [key, value] of this.#clocks) {
      if (dropped++ >= MAX_ORIGINS / 2) break;
      this.#clocks.delete(key);
      this.#completeFrom = Math.max(this.#completeFrom, value);
    }
  }

  /** The clock `origin` was committed at, if known. */
  clockOf(origin: string): number | undefined {
    return this.#clocks.get(origin);
  }

  /** Steps up to `clock` were not all seen (a reload): nothing before it is known any more. */
  reset(clock: number): void {
    this.#clocks.clear();
    this.#completeFrom = clock;
  }
}

/** A push waiting for (or sent to) the writer. `P` is the engine's push type. */
export interface ForwardItem<P> {
  origin: string;
  push: P;
  sessionId: string;
  /** The push as the client sent it. */
  message: PushRequest;
  /** Its document ops (presence is handled where the session is). */
  diff: WireNetworkDiff;
  /** UTF-8 size of `diff` as JSON. */
  bytes: number;
  /** `false`: must be committed here (too big for the bus, or the session needs migrations). */
  forwardable: boolean;
}

interface InFlight<P> {
  batch: number;
  to: string;
  items: Map<string, ForwardItem<P>>;
  firstSentAt: number;
  sentAt: number;
  /** When the writer was last heard from while this batch was out. */
  heardAt: number;
}

/**
 * The forwarding side of one room on one isolate: the pushes not sent yet, in arrival order, and
 * the one batch in flight.
 */
export class Forwarder<P> {
  readonly #isolateId: string;
  #queue: ForwardItem<P>[] = [];
  #inFlight: InFlight<P> | null = null;
  #batch = 0;

  constructor(isolateId: string) {
    this.#isolateId = isolateId;
  }

  /** Something is queued or in flight: later pushes must queue behind it (order). */
  get busy(): boolean {
    return this.#queue.length > 0 || this.#inFlight !== null;
  }

  /** The writer the batch in flight went to. */
  get target(): string | undefined {
    return this.#inFlight?.to;
  }

  enqueue(item: ForwardItem<P>): void {
    this.#queue.push(item);
  }

  /**
   * The next batch for writer `to` (planned at clock `base`), or `"direct"` when the first queued
   * push cannot be forwarded, or `null` when a batch is in flight or nothing is queued.
   */
  next(to: string, base: number, now: number): ForwardMessage | "direct" | null {
    if (this.#inFlight || this.#queue.length === 0) return null;
    if (!this.#queue[0]!.forwardable) return "direct";
    const items = new Map<string, ForwardItem<P>>();
    let bytes = 0;
    while (this.#queue.length > 0) {
      const item = this.#queue[0]!;
      if (
        !item.forwardable || items.size >= MAX_FORWARD_BATCH_PUSHES ||
        (items.size > 0 && bytes + item.bytes > MAX_FORWARD_BATCH_BYTES)
      ) break;
      this.#queue.shift();
      items.set(item.origin, item);
      bytes += item.bytes + 64;
    }
    this.#inFlight = {
      batch: ++this.#batch,
      to,
      items,
      firstSentAt: now,
      sentAt: now,
      heardAt: now,
    };
    return this.#message(this.#inFlight, base);
  }

  /** `isolateId` showed signs of life in this room (a commit notice, a message). */
  heardFrom(isolateId: string, now: number): void {
    if (this.#inFlight?.to === isolateId) this.#inFlight.heardAt = now;
  }

  /** The batch in flight again (what is still unanswered), as of clock `base`. */
  resend(base: number, now: number): ForwardMessage | null {
    const flight = this.#inFlight;
    if (!flight) return null;
    flight.sentAt = now;
    return this.#message(flight, base);
  }

  #message(flight: InFlight<P>, base: number): ForwardMessage {
    const pushes: ForwardedPush[] = [];
    for (const item of flight.items.values()) {
      pushes.push({ origin: item.origin, session: item.sessionId, diff: item.diff });
    }
    return {
      kind: "push",
      to: flight.to,
      from: this.#isolateId,
      batch: flight.batch,
      base,
      pushes,
    };
  }

  /** What the batch in flight waits for: nothing, a re-send, or giving up. */
  due(now: number): "resend" | "give_up" | null {
    const flight = this.#inFlight;
    if (!flight) return null;
    const silent = now - flight.heardAt;
    const sinceFirst = now - flight.firstSentAt;
    if (
      sinceFirst >= ForwardTimeouts.giveUpBusy ||
      (sinceFirst >= ForwardTimeouts.giveUp && silent >= ForwardTimeouts.giveUp)
    ) return "give_up";
    const sinceSent = now - flight.sentAt;
    if (
      sinceSent >= ForwardTimeouts.resendBusy ||
      (sinceSent >= ForwardTimeouts.resend && silent >= ForwardTimeouts.resend)
    ) return "resend";
    return null;
  }

  /** Whether `batch` is the one in flight. */
  isInFlight(batch: number): boolean {
    return this.#inFlight?.batch === batch;
  }

  /** The sent push with this origin, if it waits for its outcome. */
  pending(origin: string): ForwardItem<P> | undefined {
    return this.#inFlight?.items.get(origin);
  }

  /**
   * The sent pushes before `origin` in its batch that are still unanswered. The writer plans a
   * batch in order, so when the step of `origin` is read, these were not committed (or their steps
   * would have come first): they were discarded (or rejected, which their reply will tell).
   */
  unansweredBefore(origin: string): ForwardItem<P>[] {
    const flight = this.#inFlight;
    if (!flight?.items.has(origin)) return [];
    const before: ForwardItem<P>[] = [];
    for (const [key, item] of flight.items) {
      if (key === origin) break;
      before.push(item);
    }
    return before;
  }

  /** Takes the sent push with this origin out (its outcome is known); ends a batch fully answered. */
  resolve(origin: string): ForwardItem<P> | undefined {
    const flight = this.#inFlight;
    const item = flight?.items.get(origin);
    if (!flight || !item) return undefined;
    flight.items.delete(origin);
    if (flight.items.size === 0) this.#inFlight = null;
    return item;
  }

  /** Every push not answered yet, in order (the batch in flight first), leaving the forwarder idle. */
  takeAll(): ForwardItem<P>[] {
    const items = [...(this.#inFlight?.items.values() ?? []), ...this.#queue];
    this.#inFlight = null;
    this.#queue = [];
    return items;
  }
}

/**
 * Outcomes of forwarded pushes collected while a group is handled, as one reply per batch. Only
 * discards and rejections are sent: a commit is in the change log (and, when small, in the clock
 * notice), which is where its isolate answers it from.
 */
export class ForwardReplies {
  readonly #byBatch = new Map<string, { to: string; batch: number; outcomes: ForwardOutcome[] }>();

  /** The outcome of a push of `batch` from the isolate `from`. */
  add(push: { from: string; batch: number }, outcome: ForwardOutcome): void {
    if ("committed" in outcome) return;
    const { from, batch } = push;
    const key = `${from}\0${batch}`;
    let reply = this.#byBatch.get(key);
    if (!reply) this.#byBatch.set(key, reply = { to: from, batch, outcomes: [] });
    reply.outcomes.push(outcome);
  }

  /** The replies from `from` (this isolate) at `clock`; empties the collection. */
  messages(from: string, clock: number): ForwardMessage[] {
    const messages: ForwardMessage[] = [];
    for (const { to, batch, outcomes } of this.#byBatch.values()) {
      messages.push({ kind: "result", to, from, batch, clock, outcomes });
    }
    this.#byBatch.clear();
    return messages;
  }
}

/**
 * One room's side of forwarding (forwarding.ts has the rules and the wire messages): whether this
 * isolate commits its pushes itself or sends them to the room's writer, the pushes it sent and
 * waits for, the origins it has seen committed, and — as the writer — the pushes other isolates
 * sent it. The room engine owns the document and the sessions; this only decides and remembers.
 *
 * @module
 */
import type { Logger } from "../../log.ts";
import { utf8Length } from "../utf8.ts";
import {
  Forwarder,
  type ForwardItem,
  type ForwardMessage,
  type ForwardOutcome,
  ForwardTimeouts,
  MAX_FORWARD_BATCH_BYTES,
  OriginIndex,
} from "./forwarding.ts";
import type { PushRequest, PushResultAction, SyncCloseReason } from "./protocol.ts";
import type { LogStep, RoomWriter } from "./room_store.ts";
import { type Session, SessionState } from "./session.ts";

/** A push of a local session waiting for its group (`origin`: it was forwarded before). */
export interface LocalPush {
  session: Session;
  message: PushRequest;
  origin?: string;
}

/** A push another isolate forwarded to this one (the room's writer) to commit. */
export interface RemotePush {
  remote: { from: string; batch: number; session: string };
  message: PushRequest;
  origin: string;
}

/** A push waiting for its group. */
export type PushEntry = LocalPush | RemotePush;

/** Whether `entry` came from another isolate. */
export function isRemote(entry: PushEntry): entry is RemotePush {
  return "remote" in entry;
}

/** What forwarding needs of its room. */
export interface ForwardingHost {
  readonly roomId: string;
  readonly isolateId: string;
  readonly log: Logger;
  clock(): number;
  closed(): boolean;
  /** Messages can go to the room's other isolates (there is a bus). */
  canSend(): boolean;
  send(message: ForwardMessage): void;
  /** Runs `task` in the room's queue, after what is queued. */
  enqueue(task: () => Promise<void> | void): Promise<void>;
  /** Catches up from the store (queued / now, inside a queued task). */
  catchUp(): void;
  catchUpNow(): Promise<void>;
  /** Queues a forwarded push for the room's next group (this isolate is the writer). */
  submit(entry: RemotePush): void;
  /** Commits local pushes here (inside a queued task). */
  commitHere(entries: LocalPush[]): Promise<void>;
  /** Applies the presence part of a push here; `false` when that rejected the session. */
  applyPresence(session: Session, message: PushRequest): boolean;
  answer(session: Session, message: PushRequest, action: PushResultAction, origin?: string): void;
  reject(session: Session, reason: SyncCloseReason): void;
  /** Forwarded pushes got no answer (or could not go) and are committed here. */
  onFallback(pushes: number): void;
}

// How often a room with pushes out at the writer checks on them.
const TICK_MS = 50;

/** Forwarding state of one room on one isolate. */
export class RoomForwarding {
  readonly #host: ForwardingHost;
  /** The isolate that committed last (from the store), to which pushes are forwarded. */
  #writer: RoomWriter | undefined;
  /** Origins of the forwarded pushes committed at each clock since the load. */
  readonly #origins = new OriginIndex(0);
  /** Pushes of local sessions for (or sent to) the writer. */
  readonly #forwarder: Forwarder<Session>;
  /** Forwarded pushes of local sessions whose outcome is not known yet, by origin. */
  readonly #awaiting = new Map<string, ForwardItem<Session>>();
  /** Origins of forwarded pushes queued here, as the writer, to be committed. */
  readonly #remoteQueued = new Set<string>();
  /** Origins of this room's forwarded pushes: a random prefix (this instance) and a sequence. */
  readonly #originPrefix = crypto.randomUUID().slice(0, 8) + ":";
  #seq = 0;
  /** When another isolate last forwarded pushes here (epoch ms). */
  #tookRemoteAt = 0;
  #timer: ReturnType<typeof setInterval> | null = null;
  #fallingBack = false;
  /** After giving up on the writer, commit here until then (epoch ms). */
  #directUntil = 0;

  constructor(host: ForwardingHost) {
    this.#host = host;
    this.#forwarder = new Forwarder(host.isolateId);
  }

  /** The room's writer, as last learned. */
  get writer(): RoomWriter | undefined {
    return this.#writer;
  }

  /** The store named the room's writer (a load, a catch-up, a clock notice). */
  noteWriter(writer: RoomWriter | undefined): void {
    this.#writer = writer;
  }

  /** This isolate committed: it is the writer now. */
  committedHere(): void {
    this.#writer = { isolateId: this.#host.isolateId, at: Date.now() };
  }

  /** The cache was replaced at `clock` (a load): origins are known from there on. */
  reset(clock: number, writer: RoomWriter | undefined): void {
    this.#writer = writer;
    this.#origins.reset(clock);
  }

  /** The clock an origin was committed at, if this isolate saw it. */
  committedAt(origin: string): number | undefined {
    return this.#origins.clockOf(origin);
  }

  /**
   * Other isolates forward this room's pushes here (this isolate is the writer, and took some in
   * the last {@link ForwardTimeouts.writerLease}): their next ones are probably on the way.
   */
  takesForwarded(): boolean {
    return Date.now() - this.#tookRemoteAt < ForwardTimeouts.writerLease;
  }

  /** Pushes go to another isolate, the room's writer (or wait behind ones that went there). */
  active(): boolean {
    if (this.#forwarder.busy) return true;
    const host = this.#host;
    if (!host.canSend() || host.closed() || Date.now() < this.#directUntil) return false;
    const writer = this.#writer;
    return writer !== undefined && writer.isolateId !== host.isolateId &&
      Date.now() - writer.at < ForwardTimeouts.writerLease;
  }

  /**
   * Local pushes for the writer: presence is handled here and now (it never touches the clock),
   * the document ops are queued for the writer, and the push_result waits for their outcome.
   */
  forward(entries: LocalPush[]): void {
    const host = this.#host;
    for (const entry of entries) {
      const { session, message } = entry;
      if (session.state !== SessionState.connected) continue;
      session.lastInteraction = Date.now();
      if (message.presence && entry.origin === undefined && !host.applyPresence(session, message)) {
        continue;
      }
      const diff = message.diff;
      if (!diff || Object.keys(diff).length === 0 || session.isReadonly) {
        // Nothing for the writer (read-only ops are dropped): `commit` only when there were none.
        host.answer(session, message, diff === undefined ? "commit" : "discard", entry.origin);
        continue;
      }
      const origin = entry.origin ?? `${this.#originPrefix}${(++this.#seq).toString(36)}`;
      if (entry.origin === undefined) session.resultSlots.push({ origin, message });
      const bytes = utf8Length(JSON.stringify(diff));
      const item: ForwardItem<Session> = {
        origin,
        session,
        sessionId: session.sessionId,
        message,
        diff,
        bytes,
        forwardable: !session.requiresDownMigrations && bytes <= MAX_FORWARD_BATCH_BYTES,
      };
      this.#awaiting.set(origin, item);
      this.#forwarder.enqueue(item);
    }
    this.pump();
  }

  /** Sends the next batch when none is in flight (or commits here what cannot be forwarded). */
  pump(): void {
    if (this.#fallingBack) return;
    const writer = this.#writer?.isolateId;
    if (!writer || writer === this.#host.isolateId) {
      if (this.#forwarder.busy && this.#forwarder.target === undefined) this.fallBack();
      return;
    }
    const next = this.#forwarder.next(writer, this.#host.clock(), Date.now());
    if (next === "direct") this.fallBack();
    else if (next) {
      this.#host.send(next);
      this.#timer ??= setInterval(() => this.#tick(), TICK_MS);
    }
  }

  #tick(): void {
    const due = this.#forwarder.due(Date.now());
    if (!this.#forwarder.busy && this.#timer !== null) {
      clearInterval(this.#timer);
      this.#timer = null;
    }
    if (due === "give_up") this.fallBack();
    else if (due === "resend") {
      // The batch may be lost, or its commits' notices: the writer answers a copy either way
      // (it commits what it did not get, and tells the clock of what it committed).
      const again = this.#forwarder.resend(this.#host.clock(), Date.now());
      if (again) this.#host.send(again);
    }
  }

  /**
   * The writer does not answer (or cannot take a push): this isolate commits what waits for it,
   * once it has caught up (pushes the writer did commit are answered from the log then).
   */
  fallBack(): void {
    if (this.#fallingBack) return;
    this.#fallingBack = true;
    const host = this.#host;
    void host.enqueue(async () => {
      try {
        this.#directUntil = Date.now() + ForwardTimeouts.direct;
        await host.catchUpNow();
        const items = this.#forwarder.takeAll().filter((item) => {
          if (item.session.state === SessionState.connected) return true;
          this.#awaiting.delete(item.origin); // nobody waits for its result any more
          return false;
        });
        if (items.length === 0) return;
        host.log.debug("forwarded pushes committed here", { pushes: items.length });
        host.onFallback(items.length);
        await host.commitHere(items.map((item) => ({
          session: item.session,
          message: { type: "push", clientClock: item.message.clientClock, diff: item.diff },
          origin: item.origin,
        })));
      } finally {
        this.#fallingBack = false;
      }
    });
  }

  /** Forwarded pushes this isolate will not commit (it is not the writer any more). */
  refuse(entries: RemotePush[]): void {
    const batches = new Map<string, RemotePush>();
    for (const entry of entries) {
      this.#remoteQueued.delete(entry.origin);
      batches.set(`${entry.remote.from}\0${entry.remote.batch}`, entry);
    }
    for (const { remote } of batches.values()) {
      this.#host.send({
        kind: "refused",
        to: remote.from,
        from: this.#host.isolateId,
        batch: remote.batch,
      });
    }
  }

  /** A forwarding message from another isolate of this room (from the bus). */
  receive(message: ForwardMessage): void {
    const host = this.#host;
    if (host.closed()) return;
    if (message.kind === "resign") {
      if (this.#writer?.isolateId === message.from) this.#writer = undefined;
      if (this.#forwarder.target === message.from) this.fallBack();
      return;
    }
    if (message.to !== host.isolateId) return;
    this.heardFrom(message.from);
    if (message.kind === "refused") {
      if (this.#forwarder.isInFlight(message.batch)) this.fallBack();
    } else if (message.kind === "result") {
      void host.enqueue(() => this.#takeOutcomes(message.outcomes, message.clock));
    } else this.#take(message);
  }

  /** `isolateId` showed signs of life in the room (its commit notice, a message). */
  heardFrom(isolateId: string): void {
    this.#forwarder.heardFrom(isolateId, Date.now());
  }

  /** Pushes forwarded to this isolate as the room's writer: they join the next group. */
  #take(message: Extract<ForwardMessage, { kind: "push" }>): void {
    const host = this.#host;
    const { from, batch } = message;
    this.#tookRemoteAt = Date.now();
    if (message.base < this.#origins.completeFrom) {
      // This isolate cannot tell whether the pushes were committed before it loaded the room.
      host.send({ kind: "refused", to: from, from: host.isolateId, batch });
      return;
    }
    // The pushes were made on top of `base`: plan them against it or later (a catch-up queued
    // now runs before their group).
    if (message.base > host.clock()) host.catchUp();
    let committed = 0;
    for (const push of message.pushes) {
      // Committed before (a copy of a batch it took already): its isolate reads that in the log.
      const clock = this.#origins.clockOf(push.origin);
      if (clock !== undefined) committed = Math.max(committed, clock);
      else if (!this.#remoteQueued.has(push.origin)) {
        this.#remoteQueued.add(push.origin);
        host.submit({
          remote: { from, batch, session: push.session },
          message: { type: "push", clientClock: 0, diff: push.diff },
          origin: push.origin,
        });
      }
    }
    if (committed > 0) {
      // The forwarder missed those commits: it is told the clock (its catch-up answers them).
      host.send({
        kind: "result",
        to: from,
        from: host.isolateId,
        batch,
        clock: host.clock(),
        outcomes: [],
      });
    }
  }

  /** A forwarded push this isolate took as the writer left its group (committed or not). */
  remoteDone(entry: RemotePush, committedClock?: number): void {
    this.#remoteQueued.delete(entry.origin);
    if (committedClock !== undefined) this.#origins.add(entry.origin, committedClock);
  }

  /** A local push with an origin (forwarded before) was committed here, as `clock`. */
  committedLocally(origin: string, clock: number | undefined): void {
    if (clock !== undefined) this.#origins.add(origin, clock);
    this.#awaiting.delete(origin);
  }

  /**
   * The writer's outcomes for pushes this isolate forwarded. Committed ones are answered when their
   * step is applied (in clock order, among the patches); a discard changes nothing, so it can be
   * answered at once (its session's later results wait behind it, spec 5.4).
   */
  async #takeOutcomes(outcomes: ForwardOutcome[], writerClock: number): Promise<void> {
    for (const outcome of outcomes) {
      const item = this.#forwarder.pending(outcome.origin);
      if (!item) continue;
      if ("rejected" in outcome) {
        this.#settle(item);
        this.#host.reject(item.session, outcome.rejected);
      } else if ("discarded" in outcome) this.#discard(item);
    }
    if (writerClock > this.#host.clock()) await this.#host.catchUpNow();
    this.pump();
  }

  #discard(item: ForwardItem<Session>): void {
    this.#settle(item);
    if (item.session.state === SessionState.connected) {
      this.#host.answer(item.session, item.message, "discard", item.origin);
    }
  }

  /** A forwarded push whose outcome is known: nothing waits for it any more. */
  #settle(item: ForwardItem<Session>): void {
    this.#awaiting.delete(item.origin);
    this.#forwarder.resolve(item.origin);
  }

  /**
   * A step of another isolate was applied: its origin is recorded, and when it is a push this
   * isolate forwarded, that push is returned (answered by the caller, with the step's change).
   * Pushes sent before it in its batch that were not committed were discarded (forwarding.ts).
   */
  stepApplied(step: LogStep): ForwardItem<Session> | undefined {
    if (step.origin === undefined) return undefined;
    this.#origins.add(step.origin, step.clock);
    const item = this.#awaiting.get(step.origin);
    if (!item) return undefined;
    for (const before of this.#forwarder.unansweredBefore(item.origin)) this.#discard(before);
    this.#settle(item);
    return item;
  }

  /**
   * Steps were skipped (rebuilt without their origins, or not read at all): whether a forwarded
   * push waiting here was committed can no longer be told from the log, so it is neither answered
   * nor committed again. Returns the sessions that waited for one: their clients reconnect and
   * push their changes again (spec 4.5).
   */
  forget(clock: number): Session[] {
    this.#origins.reset(clock);
    const items = [...this.#awaiting.values(), ...this.#forwarder.takeAll()];
    this.#awaiting.clear();
    return [...new Set(items.map((item) => item.session))];
  }

  /** The room closes: what is out at the writer is committed here (queued in the room). */
  close(): void {
    if (this.#forwarder.busy) this.fallBack();
  }

  /**
   * The room's queue ran dry after {@link close}: the timer stops, and a writer tells the other
   * isolates, so that they commit at once rather than after their timeout.
   */
  closed(hasPeers: boolean): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    if (hasPeers && this.#writer?.isolateId === this.#host.isolateId) {
      this.#host.send({ kind: "resign", from: this.#host.isolateId });
    }
  }
}

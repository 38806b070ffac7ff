/**
 * Live pulls of this process and how new events reach them.
 *
 * Each live pull remembers the last seqNum it sent and only ever sends what follows it, so chunks arrive in
 * order with no gaps however they were triggered:
 * - pushes handled here are offered directly (no database read when the pull is exactly at their parent);
 * - pushes handled by other isolates or processes arrive as hints (Postgres NOTIFY, and the cross-isolate
 *   bus when there is one); the pull then reads from the database;
 * - a periodic head check repairs lost notifications (they are hints, never trusted), bounding the delay.
 *
 * Nothing runs until the first live pull: no listener, no timer.
 *
 * @module
 */
import type { Notifier } from "../../db/database.ts";
import type { Bus } from "../bus/bus.ts";
import type { Logger } from "../../log.ts";
import { toPullResponses } from "./chunking.ts";
import type { EventStore, StoredEvent } from "./event_store.ts";
import type { HeadNotice } from "./postgres_event_store.ts";
import { type PullSink, streamEvents } from "./pull_stream.ts";

/** Options for {@link LivePullHub}. */
export interface LivePullHubOptions {
  store: EventStore;
  log: Logger;
  /** Cross-process hints; without it only local pushes and the head check feed live pulls. */
  notifier?: Notifier;
  /** The NOTIFY channel the event store publishes on. */
  channel: string;
  /** The cross-isolate bus: head hints per store topic, in both directions. */
  bus?: Bus;
  /** This process's id in notices (its own are skipped: local pushes are offered directly). */
  instanceId: string;
  /** How often heads are re-read for stores with live pulls. */
  headCheckIntervalMs: number;
  /** Told about every head learnt from notices and head checks (feeds the append queue's bound). */
  onHead?: (storeId: string, head: number) => void;
}

/** One open live pull. */
export class LivePull {
  readonly storeId: string;
  readonly backendId: string;
  #lastSent: number;
  #running = false;
  #pending = false;
  #closed = false;
  readonly #sink: PullSink;
  readonly #hub: LivePullHub;

  constructor(hub: LivePullHub, storeId: string, backendId: string, after: number, sink: PullSink) {
    this.#hub = hub;
    this.storeId = storeId;
    this.backendId = backendId;
    this.#lastSent = after;
    this.#sink = sink;
  }

  /** The seqNum of the last event sent to the client. */
  get lastSent(): number {
    return this.#lastSent;
  }

  /** `true` once closed. */
  get closed(): boolean {
    return this.#closed || this.#sink.closed;
  }

  /** Stops sending. */
  close(): void {
    this.#closed = true;
    this.#hub.remove(this);
  }

  /**
   * Events just appended by this process. Sent straight away when they follow what the client has;
   * otherwise (a catch-up is running, or a gap) the pull reads from the database instead.
   */
  offer(events: readonly StoredEvent[], encoded: () => string[]): void {
    const first = events[0];
    const last = events.at(-1);
    if (!first || !last || this.closed) return;
    if (!this.#running && first.parentSeqNum === this.#lastSent) {
      for (const json of encoded()) this.#sink.send(json);
      this.#lastSent = last.seqNum;
    } else if (last.seqNum > this.#lastSent) {
      this.wake();
    }
  }

  /** Makes the pull read what follows its cursor from the database (coalesced while one read runs). */
  wake(): void {
    if (this.closed) return;
    this.#pending = true;
    if (!this.#running) this.#hub.track(this.#run(false));
  }

  /** Sends the initial events (at least one chunk). Rejects if the first read fails. */
  start(): Promise<void> {
    this.#pending = true;
    const run = this.#run(true);
    this.#hub.track(run.catch(() => {}));
    return run;
  }

  async #run(initial: boolean): Promise<void> {
    this.#running = true;
    try {
      while (this.#pending && !this.closed) {
        this.#pending = false;
        this.#lastSent = await streamEvents(
          this.#hub.store,
          this.storeId,
          this.backendId,
          this.#lastSent,
          this.#sink,
          { emptyIfNothing: initial },
        );
        initial = false;
      }
    } catch (error) {
      if (initial) throw error;
      // The next notice or head check retries from the same cursor.
      this.#hub.log.warn("livestore live pull catch-up failed", { storeId: this.storeId, error });
    } finally {
      this.#running = false;
    }
  }
}

/** Every live pull of this process, by store. */
export class LivePullHub {
  readonly store: EventStore;
  readonly log: Logger;
  readonly #options: LivePullHubOptions;
  readonly #byStore = new Map<string, Set<LivePull>>();
  readonly #inflight = new Set<Promise<unknown>>();
  readonly #busSubscriptions = new Map<string, () => void>();
  #unlisten: Promise<(() => Promise<void>) | undefined> | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #closed = false;

  constructor(options: LivePullHubOptions) {
    this.#options = options;
    this.store = options.store;
    this.log = options.log;
  }

  /** Number of open live pulls (tests, metrics). */
  get size(): number {
    let count = 0;
    for (const pulls of this.#byStore.values()) count += pulls.size;
    return count;
  }

  /**
   * Opens a live pull from `after` and sends the initial events. Rejects (and removes the pull) if the
   * initial read fails.
   */
  async open(storeId: string, backendId: string, after: number, sink: PullSink): Promise<LivePull> {
    if (this.#closed) throw new Error("live pull hub is closed");
    const pull = new LivePull(this, storeId, backendId, after, sink);
    // Registered before the first read so that a push landing meanwhile marks it pending, not lost.
    let pulls = this.#byStore.get(storeId);
    if (!pulls) {
      this.#byStore.set(storeId, pulls = new Set());
      this.#subscribeBus(storeId);
    }
    pulls.add(pull);
    this.#startBackground();
    try {
      await pull.start();
    } catch (error) {
      pull.close();
      throw error;
    }
    return pull;
  }

  /** Called by {@link LivePull.close}. */
  remove(pull: LivePull): void {
    const pulls = this.#byStore.get(pull.storeId);
    if (!pulls) return;
    pulls.delete(pull);
    if (pulls.size === 0) {
      this.#byStore.delete(pull.storeId);
      this.#busSubscriptions.get(pull.storeId)?.();
      this.#busSubscriptions.delete(pull.storeId);
    }
    if (this.#byStore.size === 0) this.#stopTimer();
  }

  /** Hands events this process just appended to every live pull of the store (including the pusher's). */
  publish(storeId: string, backendId: string, events: readonly StoredEvent[]): void {
    const pulls = this.#byStore.get(storeId);
    const last = events.at(-1);
    if (!last) return;
    const bus = this.#options.bus;
    if (bus && !this.#closed) {
      this.track(
        bus.publish(busTopic(storeId), { h: last.seqNum }).catch((error) =>
          this.log.debug("livestore bus publish failed", { storeId, error })
        ),
      );
    }
    if (!pulls) return;
    let encoded: string[] | undefined;
    const encode = () =>
      encoded ??= toPullResponses(events, backendId, last.seqNum).map((r) => JSON.stringify(r));
    for (const pull of [...pulls]) pull.offer(events, encode);
  }

  /** Wakes the pulls of `storeId` that are behind `head`. */
  wakeBehind(storeId: string, head: number): void {
    this.#options.onHead?.(storeId, head);
    for (const pull of [...(this.#byStore.get(storeId) ?? [])]) {
      if (pull.lastSent < head) pull.wake();
    }
  }

  /** Keeps `promise` so that {@link close} can wait for it (no database work outlives the hub). */
  track(promise: Promise<unknown>): void {
    const tracked = promise.finally(() => this.#inflight.delete(tracked));
    this.#inflight.add(tracked);
  }

  /** Ends every pull, stops listening and waits for reads in flight. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const pulls of [...this.#byStore.values()]) for (const pull of [...pulls]) pull.close();
    this.#stopTimer();
    for (const unsubscribe of this.#busSubscriptions.values()) unsubscribe();
    this.#busSubscriptions.clear();
    const unlisten = await this.#unlisten?.catch(() => undefined);
    this.#unlisten = undefined;
    await unlisten?.().catch(() => {});
    while (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight]);
  }

  #startBackground(): void {
    const { notifier, channel, headCheckIntervalMs } = this.#options;
    if (notifier && !this.#unlisten) {
      this.#unlisten = notifier.listen(channel, (payload) => this.#onNotice(payload)).catch(
        (error) => {
          this.log.warn("livestore notifications unavailable; relying on head checks", { error });
          return undefined;
        },
      );
      this.track(this.#unlisten);
    }
    if (!this.#timer && headCheckIntervalMs > 0) {
      this.#timer = setInterval(() => this.track(this.#checkHeads()), headCheckIntervalMs);
    }
  }

  #subscribeBus(storeId: string): void {
    const bus = this.#options.bus;
    if (!bus) return;
    this.#busSubscriptions.set(
      storeId,
      bus.subscribe(busTopic(storeId), (body) => {
        const head = typeof body === "object" && body !== null && !Array.isArray(body)
          ? body.h
          : undefined;
        if (typeof head === "number") this.wakeBehind(storeId, head);
      }),
    );
  }

  #stopTimer(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #onNotice(payload: string): void {
    let notice: HeadNotice;
    try {
      notice = JSON.parse(payload) as HeadNotice;
    } catch {
      return;
    }
    if (notice.i === this.#options.instanceId || typeof notice.s !== "string") return;
    if (typeof notice.h === "number") this.wakeBehind(notice.s, notice.h);
  }

  async #checkHeads(): Promise<void> {
    const storeIds = [...this.#byStore.keys()];
    if (storeIds.length === 0) return;
    try {
      const heads = await this.store.heads(storeIds);
      for (const [storeId, head] of heads) this.wakeBehind(storeId, head);
    } catch (error) {
      this.log.warn("livestore head check failed", { error });
    }
  }
}

/** The bus topic carrying head hints of one store. */
export function busTopic(storeId: string): string {
  return `livestore:${storeId}`;
}

/**
 * A room's document on this isolate: a cache of the store, which is the sequencer and the source of
 * truth. Everything that reads or advances it runs in the room's queue (room_queue.ts): pushes are
 * committed in groups (group_commit.ts), other isolates' commits are applied as they are learned
 * (document_catch_up.ts), from clock notices, the log, or a poll. While another isolate is the
 * room's writer, pushes go there (forward_sender.ts); as the writer, this isolate commits the
 * pushes others forward (forward_taker.ts).
 *
 * The document never sees a socket: it settles each push ({@link QueuedPush.settle}) and reports
 * everything else to one {@link DocumentSink} (the sessions).
 *
 * @module
 */
import { DocumentCatchUp } from "./document_catch_up.ts";
import { DocumentCore, type DocumentOptions, type DocumentSink } from "./document_core.ts";
import { ForwardSender } from "./forward_sender.ts";
import { ForwardTaker } from "./forward_taker.ts";
import type { ForwardMessage } from "./forwarding.ts";
import { GroupCommit } from "./group_commit.ts";
import { type CachedRecord, planPush, type PlanSession, type PushPlan } from "./push_plan.ts";
import type { PushRequest, WireNetworkDiff, WireRecord } from "./protocol.ts";
import type { QueuedPush } from "./queued_push.ts";
import type { RoomCache } from "./room_cache.ts";
import { loadOrCreate, migrationOf } from "./room_load.ts";
import { RoomQueue } from "./room_queue.ts";
import { ALONE_SLOWDOWN } from "./room_options.ts";
import type { LogStep } from "./room_store.ts";

export type { DocumentChange, DocumentOptions, DocumentSink } from "./document_core.ts";

// Rooms with fewer records load quickly record by record: no compacted snapshot for them.
const SNAPSHOT_MIN_RECORDS = 100;
// Lost commit races in a row before a server-side update is given up.
const MAX_COMMIT_ATTEMPTS = 20;

/** One room's document on this isolate. */
export class RoomDocument {
  readonly roomId: string;
  readonly #core: DocumentCore;
  readonly #queue: RoomQueue<QueuedPush>;
  readonly #catchUp: DocumentCatchUp;
  readonly #commit: GroupCommit;
  #catchUpQueued: Promise<void> | null = null;
  #pollTimer: ReturnType<typeof setInterval> | null = null;

  constructor(options: DocumentOptions) {
    this.roomId = options.roomId;
    const core = this.#core = new DocumentCore(options);
    this.#queue = new RoomQueue(options.log, () => this.#commit.settled());
    this.#catchUp = new DocumentCatchUp(core);
    this.#commit = new GroupCommit(core, this.#catchUp, this.#queue);
    const link = options.link;
    if (link) {
      const publish = (message: ForwardMessage) => link.publish({ kind: "forward", message });
      const clock = () => core.cache.clock;
      core.sender = new ForwardSender(options.isolateId, clock, {
        publish,
        fallBack: () => this.#fallBack(),
      });
      core.taker = new ForwardTaker(options.isolateId, core.origins, clock, {
        publish,
        submit: (push) => this.submit(push),
        catchUp: () => void this.catchUp(),
        changed: (forward, diff) => core.sink.changed({ forward, diff }),
      });
    }
  }

  /** Where the document reports from now on (set once, by the room). */
  reportTo(sink: DocumentSink): void {
    this.#core.sink = sink;
  }

  /** Loads (or creates) the document, catches up, and migrates stored records once if needed. */
  async load(): Promise<void> {
    const { store, cache, options } = this.#core;
    const data = await loadOrCreate(store, this.roomId, options.schema);
    this.#core.replaceCache(data);
    // A listing is not a snapshot: re-read whatever changed while loading.
    await this.#catchUp.now();
    const changeSet = migrationOf(cache, options.schema, data.meta.schema, options.log);
    if (!changeSet) return;
    const result = await store.commitSteps(this.roomId, cache.clock, [changeSet]);
    if (result.ok) cache.applyCommitted(changeSet, result.clock);
    else await this.#catchUp.now();
  }

  /** The clock of this isolate's cache. */
  get clock(): number {
    return this.#core.cache.clock;
  }

  /** The cached records, by id (read only). */
  get records(): ReadonlyMap<string, CachedRecord> {
    return this.#core.cache.records;
  }

  /** Spec 7.2: what changed after `since` (for a connect reply); `undefined` when nothing did. */
  changesSince(since: number): ReturnType<RoomCache["changesSince"]> {
    return this.#core.cache.changesSince(since);
  }

  /** Tasks queued or running (the room is busy). */
  get pending(): number {
    return this.#queue.pending;
  }

  /** Evaluates a push against the cache now (its presence part, when forwarding). */
  plan(client: PlanSession | null, message: PushRequest): PushPlan {
    const { cache, sink, options: { schema, limits, presences } } = this.#core;
    return planPush(
      {
        schema,
        records: cache.records,
        presences,
        maxRecordChars: limits.maxRecordChars,
        maxRecordIdChars: limits.maxRecordIdChars,
        legacyAppend: sink.legacyAppend,
      },
      client,
      message,
    );
  }

  /** Runs `task` in the room's queue, after what is queued (its failure is logged). */
  schedule(task: () => Promise<void> | void): Promise<void> {
    return this.#queue.run(task);
  }

  /** Reads the store's log now; only from inside a {@link schedule}d task. */
  syncNow(): Promise<void> {
    return this.#catchUp.now();
  }

  /** Queues a push; pushes queued back to back (while a commit is in flight) form one group. */
  submit(push: QueuedPush): void {
    this.#queue.submit(push, (group) => this.#commit.handle(group), (group) => {
      // Other isolates forward pushes here: while the store writes something else, theirs (which
      // come a bus hop after the local ones) keep joining this group. Otherwise the group would
      // commit the local pushes alone and theirs right after, twice the commits for the same
      // pushes. Not when only local sessions push: planning groups while a write is in flight
      // keeps the store busier than bigger groups would.
      if (!this.#core.taker?.takesForwarded() || !changesDocument(group)) return undefined;
      return this.#core.store.writeSlot?.();
    });
  }

  /** Reads what other isolates committed after the cache's clock (queued; coalesced). */
  catchUp(): Promise<void> {
    // Several notices in a row need one read, not one each.
    return this.#catchUpQueued ??= this.#queue.run(() => {
      this.#catchUpQueued = null;
      return this.#catchUp.now();
    });
  }

  /**
   * The store reached `clock` (a notice from the link), by `writer`'s commit, with the steps that
   * got it there when they were small: catch up if that is news (from the steps when they start
   * right after the cache's clock, else from the store).
   */
  noticeClock(clock: number, notice: { writer?: string; steps?: LogStep[] } = {}): void {
    const core = this.#core;
    const { writer, steps } = notice;
    if (writer) core.sender?.heardFrom(writer);
    if (clock <= core.cache.clock || core.closing) return;
    if (!steps?.length) {
      void this.catchUp();
      return;
    }
    void this.#queue.run(() => this.#catchUp.fromNotice(clock, steps, writer));
  }

  /** A forwarding message from another isolate of this room (see forwarding.ts). */
  receiveForward(message: ForwardMessage): void {
    const core = this.#core;
    const { sender, taker } = core;
    if (!sender || !taker || core.closing) return;
    if (message.kind === "resign") {
      if (core.writer?.isolateId === message.from) core.writer = undefined;
      sender.resigned(message.from);
      return;
    }
    if (message.to !== core.options.isolateId) return;
    sender.heardFrom(message.from);
    switch (message.kind) {
      case "push":
        return taker.take(message);
      case "refused":
        return sender.refused(message.batch);
      case "result":
        void this.#queue.run(async () => {
          sender.takeOutcomes(message.outcomes);
          if (message.clock > core.cache.clock) await this.#catchUp.now();
          sender.pump(core.writer?.isolateId);
        });
        return;
      default:
        return message satisfies never;
    }
  }

  /**
   * Another isolate keeps losing commit races on this room (it reported contention): hold this
   * isolate's commits back for `ms`, so that the one that had to catch up gets a turn. Without it,
   * the isolate that just won commits again before the loser has re-read the log, and the loser
   * can starve. Only fairness rides on it: a lost request changes nothing else.
   */
  yieldCommits(ms: number): void {
    this.#commit.yieldCommits(ms);
  }

  /**
   * A server-side edit (restore, rename, …): `update` receives a copy of the document records and
   * returns the records to put and ids to remove. Validated, committed and sent like a push.
   */
  update(
    update: (records: WireRecord[]) => { puts?: WireRecord[]; removes?: string[] },
  ): Promise<void> {
    const core = this.#core;
    return this.#queue.runResult(async () => {
      for (let attempt = 0; attempt < MAX_COMMIT_ATTEMPTS; attempt++) {
        const records = [...core.cache.records.values()].map((r) => structuredClone(r.state));
        const { puts = [], removes = [] } = update(records);
        const diff: WireNetworkDiff = {};
        for (const record of puts) diff[record.id] = ["put", record];
        for (const id of removes) diff[id] = ["remove"];
        const plan = this.plan(null, { type: "push", clientClock: 0, diff });
        if (!plan.docDiff) return;
        const steps = [plan.changeSet];
        const result = await core.store.commitSteps(this.roomId, core.cache.clock, steps);
        if (result.ok) {
          core.cache.applyCommitted(plan.changeSet, result.clock);
          core.announce(result.clock);
          core.sink.changed({ forward: plan.docForward, diff: plan.docDiff });
          return;
        }
        await this.#catchUp.now();
      }
      throw new Error("server-side update lost too many commit races");
    });
  }

  /**
   * While the room is in use: check the store's clock now and then (repairs lost notices), less
   * often while alone ({@link ALONE_SLOWDOWN}).
   */
  startPolling(): void {
    const ms = this.#core.options.pollMs;
    if (ms <= 0) return;
    let skipped = 0;
    let lastTurn = Date.now();
    this.#pollTimer ??= setInterval(() => {
      if (this.#core.options.peers.quiet && ++skipped < ALONE_SLOWDOWN) return;
      skipped = 0;
      const since = lastTurn;
      lastTurn = Date.now();
      // A commit of ours, a read or another isolate's notice since the last turn showed the clock
      // then: a busy room never polls (a commit by another isolate makes our next one fail and
      // catch up; a notice lost between two others shows as a gap in the later one).
      if (this.#core.confirmedAt >= since) return;
      if (this.#queue.pending === 0) void this.catchUp();
    }, ms);
  }

  stopPolling(): void {
    if (this.#pollTimer !== null) clearInterval(this.#pollTimer);
    this.#pollTimer = null;
  }

  /** Resolves when nothing is queued. */
  idle(): Promise<void> {
    return this.#queue.idle();
  }

  /**
   * The room closes: pushes out at the writer are committed here (after reading what the writer
   * did), then everything queued finishes. A writer tells the others it leaves, so that they
   * commit at once rather than after their timeout.
   */
  async close(): Promise<void> {
    const core = this.#core;
    core.closing = true;
    if (core.sender?.busy) this.#fallBack();
    await this.idle();
    core.sender?.stop();
    this.stopPolling();
    const { peers, isolateId, link } = core.options;
    if (peers.present && core.writer?.isolateId === isolateId) {
      link?.publish({ kind: "forward", message: { kind: "resign", from: isolateId } });
    }
  }

  /** The next cold load of a big room reads a compacted copy instead of every record. */
  async saveSnapshot(): Promise<void> {
    const { store, cache, log } = this.#core;
    if (!store.saveSnapshot || cache.records.size < SNAPSHOT_MIN_RECORDS) return;
    try {
      await store.saveSnapshot(this.roomId, cache.clock, [...cache.records.values()]);
    } catch (error) {
      log.warn("room snapshot failed", { error });
    }
  }

  /**
   * The writer does not answer (forward_sender.ts): catch up (pushes the writer did commit are
   * settled from the log then), then commit what still waits here.
   */
  #fallBack(): void {
    const core = this.#core;
    const sender = core.sender!;
    void this.#queue.run(async () => {
      try {
        await this.#catchUp.now();
        const pushes = sender.takeForFallback();
        if (pushes.length === 0) return;
        core.log.debug("forwarded pushes committed here", { pushes: pushes.length });
        core.options.hooks?.onForwardFallback?.({ roomId: this.roomId, pushes: pushes.length });
        await this.#commit.handle(pushes);
      } finally {
        sender.fallbackDone();
      }
    });
  }
}

/** Whether some push of `group` changes the document (and so will commit). */
function changesDocument(group: readonly QueuedPush[]): boolean {
  for (const push of group) {
    const diff = push.message.diff;
    if (diff) { for (const _ in diff) return true; }
  }
  return false;
}

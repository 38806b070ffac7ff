/**
 * Group commit of a room's queued pushes (spec 5): every push of a group is planned against the
 * state left by the ones before it (push_group.ts), the changing ones are committed with one store
 * write (one clock step each, as many as fit), then every push is settled and the patches go out,
 * in order. A lost race catches up and re-plans; racing isolates back off; a store that fails
 * settles what waits as failed. While another isolate is the room's writer, the pushes go there.
 *
 * @module
 */
import type { DocumentCatchUp } from "./document_catch_up.ts";
import type { DocumentCore } from "./document_core.ts";
import { PIPELINE_DEPTH } from "./kv_pipeline.ts";
import { isDatabaseLocked } from "./locked_retry.ts";
import {
  type GroupContext,
  type GroupItem,
  MAX_GROUP_PUSHES,
  planGroup,
  type PlannedGroup,
} from "./push_group.ts";
import type { QueuedPush } from "./queued_push.ts";
import type { RoomQueue } from "./room_queue.ts";
import type { ObjectDiff } from "./diff.ts";
import { recordJson } from "./record_json.ts";
import {
  type ChangeSet,
  type CommitResult,
  type LogStep,
  type RecordPatch,
  RoomStoreError,
} from "./room_store.ts";

// Clients' pushes are not given up after a number of lost races but after this long losing them:
// under load a loser's catch-up takes long enough for the winner to commit again many times, and
// giving up closes sockets (the clients reconnect and push again, which only adds load).
const COMMIT_RACE_BUDGET_MS = 15_000;
// Pause before a retry after the second lost race: up to this many ms times the attempt, random,
// and at most RETRY_JITTER_MAX_MS: shorter than the turn other isolates give (see yieldCommits).
// (Pauses growing to 64 ms and turns growing with the loser's attempts cut the 200-rooms-spread
// benchmark's throughput from 0.52x to 0.33x of one isolate: waiting costs more than racing.)
const RETRY_JITTER_MS = 2;
const RETRY_JITTER_MAX_MS = 8;
// Pipelined groups of at least this many pushes are spaced over a round trip (see #pipelined); a
// room at a human pace, whose groups are a push or two, issues each at once.
export const PACED_GROUP = 4;
// Longest a room holds its commits back when another isolate reports contention.
const MAX_YIELD_MS = 100;

/** A group whose commit is in flight (pipelined), planned on the state the ones before leave. */
interface InFlightGroup extends PlannedGroup<QueuedPush> {
  result: Promise<CommitResult>;
  /** Origins its steps commit, at their clocks. */
  origins: Map<string, number>;
  /** Resolves once it is settled (after the groups before it). */
  settled: Promise<void>;
}

/** The group commit of one room's document. */
export class GroupCommit {
  readonly #core: DocumentCore;
  readonly #catchUp: DocumentCatchUp;
  readonly #queue: RoomQueue<QueuedPush>;
  /** Commits wait until then (epoch ms): another isolate asked for a turn. */
  #yieldUntil = 0;
  /** Pipelined groups (a remote store), oldest first. */
  #inFlight: InFlightGroup[] = [];
  /** Pushes of pipelined groups to plan again, in order: a commit before theirs failed. */
  #retry: QueuedPush[] = [];
  /** A pipelined commit failed: the groups in flight after it are planned again too. */
  #pipelineFailed = false;
  /** How long a pipelined commit takes (ms, moving average; 0 until one returned). */
  #commitMs = 0;

  constructor(core: DocumentCore, catchUp: DocumentCatchUp, queue: RoomQueue<QueuedPush>) {
    this.#core = core;
    this.#catchUp = catchUp;
    this.#queue = queue;
  }

  /** Holds this isolate's commits back for `ms` (see RoomDocument.yieldCommits). */
  yieldCommits(ms: number): void {
    this.#yieldUntil = Math.max(this.#yieldUntil, Date.now() + Math.min(ms, MAX_YIELD_MS));
  }

  /** Handles queued pushes in arrival order, as groups (inside a task of the room's queue). */
  async handle(pushes: QueuedPush[]): Promise<void> {
    // More than one group's worth (a busy room on a remote store queues a round trip's pushes)
    // goes out as several pipelined groups: handled in order instead, they would take a round
    // trip per group while more queue up behind them.
    let rest = pushes;
    while (rest.length > 0) {
      const group = rest.length > MAX_GROUP_PUSHES ? rest.slice(0, MAX_GROUP_PUSHES) : rest;
      if (!(await this.#pipelined(group))) break;
      rest = rest.slice(group.length);
    }
    if (rest.length === 0) return;
    await this.settled();
    await this.#handleInOrder(rest);
  }

  /**
   * `undefined` when no pipelined commit is in flight; otherwise resolves once they are settled
   * and the pushes of failed ones handled again. Every task of the room's queue other than a push
   * group waits for it, so nothing else reads the document while commits are in flight.
   */
  settled(): Promise<void> | undefined {
    if (this.#inFlight.length === 0 && this.#retry.length === 0) return undefined;
    return (async () => {
      for (;;) {
        const last = this.#inFlight.at(-1);
        if (last) await last.settled;
        else if (this.#retry.length > 0) await this.#handleInOrder(this.#retry.splice(0));
        else return;
      }
    })();
  }

  /**
   * With a store that pipelines (a remote KV), plans `pushes` on the state the groups in flight
   * leave and commits them without waiting for those; `false` when it cannot (they are then
   * handled in order, after what is in flight).
   */
  async #pipelined(pushes: QueuedPush[]): Promise<boolean> {
    const core = this.#core;
    // Only a remote store pipelines (a local one would plan every group twice for nothing).
    const pipeline = core.store.remote ? core.store.pipelineSteps?.bind(core.store) : undefined;
    if (!pipeline || this.#retry.length > 0 || this.#pipelineFailed || core.closing) return false;
    if (this.#yieldUntil > Date.now()) return false;
    const sender = core.sender;
    if (sender && (sender.busy || sender.active(core.writer))) return false;
    const previous = this.#inFlight.at(-1);
    const planned = planGroup(
      this.#context(previous),
      pushes.filter((push) => push.live()),
      MAX_GROUP_PUSHES,
    );
    let result: Promise<CommitResult> | undefined;
    if (planned.steps.length > 0) {
      this.#stamp(planned.steps);
      try {
        result = pipeline(core.roomId, previous?.clock ?? core.cache.clock, planned.steps);
      } catch {
        return false; // the usual path meets the same error and settles the pushes with it
      }
    } else if (previous) {
      result = Promise.resolve({ ok: true, clock: planned.clock });
    }
    if (!result) return false;
    const origins = new Map<string, number>();
    for (const { push, clock } of planned.items) {
      if (push.origin !== undefined && clock !== undefined) origins.set(push.origin, clock);
    }
    const group: InFlightGroup = { ...planned, result, origins, settled: Promise.resolve() };
    // (Never rejects: the groups behind it are settled after it whatever happens.)
    group.settled = (previous?.settled ?? Promise.resolve())
      .then(() => this.#settleInFlight(group))
      .catch((error) => core.log.error("settling a pipelined group failed", { error }));
    this.#inFlight.push(group);
    const issuedAt = performance.now();
    if (planned.steps.length > 0) {
      void result.then(() => {
        const ms = performance.now() - issuedAt;
        this.#commitMs = this.#commitMs === 0 ? ms : this.#commitMs * 0.9 + ms * 0.1;
      }, () => {});
    }
    // As many in flight as a pipeline takes: the pushes arriving meanwhile gather into the next
    // group.
    if (this.#inFlight.length >= PIPELINE_DEPTH) {
      await this.#inFlight[0]!.settled;
    } else if (this.#inFlight.length > 1 && group.items.length >= PACED_GROUP) {
      // A busy room's commits spread over a round trip: issued as fast as pushes come, they go
      // out in a burst that fills the pipeline, then the pushes after it wait a whole round trip
      // for the burst to return (measured on a 20 ms KV at ~9,000 pushes/s: push→ack p50 47 ms
      // while one commit took 22 ms). Pushes arriving meanwhile gather into the next group.
      const spacing = this.#commitMs / PIPELINE_DEPTH - (performance.now() - issuedAt);
      if (spacing >= 1) await sleep(spacing);
    }
    return true;
  }

  /** Settles the oldest pipelined group once its commit returned. */
  async #settleInFlight(group: InFlightGroup): Promise<void> {
    let result: CommitResult | undefined;
    let failure: RoomStoreError | undefined;
    try {
      result = await group.result;
    } catch (error) {
      failure = RoomStoreError.from(error);
    }
    this.#inFlight.shift();
    const core = this.#core;
    try {
      if (this.#pipelineFailed || !result?.ok) {
        // Planned on a state that was not committed: planned again, before anything newer. Pushes
        // whose own commit threw fail as they do when not pipelined, unless a busy KV file refused
        // it (nothing was written; the usual path retries that too).
        if (failure && !this.#pipelineFailed && !isDatabaseLocked(failure)) {
          for (const { push } of group.items) {
            if (push.live()) push.settle({ kind: "failed", error: failure });
          }
        } else {
          this.#retry.push(...group.items.map((item) => item.push));
        }
        this.#pipelineFailed = true;
        return;
      }
      const committed = group.steps.length > 0;
      if (committed) {
        core.committedHere();
        core.sink.holdFrames();
      }
      try {
        for (const item of group.items) this.#settle(item);
      } finally {
        core.sink.releaseFrames();
      }
      if (committed) this.#committed(group.items);
    } finally {
      core.taker?.flush();
      if (this.#inFlight.length === 0) {
        this.#pipelineFailed = false;
        // The queue's next task plans them again first (see settled).
        if (this.#retry.length > 0) void this.#queue.run(() => {});
      }
    }
  }

  /** Handles `pushes` one group after another, each commit awaited. */
  async #handleInOrder(pushes: QueuedPush[]): Promise<void> {
    const state = { remaining: pushes };
    try {
      await this.#commitGroups(state);
    } catch (error) {
      // The store failed (KV unreachable): the pushes not settled yet fail.
      const failure = RoomStoreError.from(error);
      for (const push of state.remaining) {
        if (push.live()) push.settle({ kind: "failed", error: failure });
      }
    } finally {
      this.#core.taker?.flush();
    }
  }

  async #commitGroups(state: { remaining: QueuedPush[] }): Promise<void> {
    const core = this.#core;
    let remaining = state.remaining;
    let attempt = 1;
    let losingSince = 0;
    while (remaining.length > 0) {
      remaining = state.remaining = remaining.filter((push) => push.live());
      if (remaining.length === 0) return;
      const sender = core.sender;
      // (Pushes queued behind forwarded ones follow them, also while the room closes.)
      if (sender && (sender.busy || (!core.closing && sender.active(core.writer)))) {
        // Another isolate is the room's writer: local pushes go there, forwarded ones go back.
        for (const push of remaining) push.redirect(sender);
        sender.pump(core.writer?.isolateId);
        state.remaining = [];
        return;
      }
      const wait = this.#yieldUntil - Date.now();
      if (wait > 0) {
        await sleep(wait);
        await this.#catchUp.now();
        continue;
      }
      let { items, steps } = planGroup(this.#context(), remaining, MAX_GROUP_PUSHES);
      const expected = core.cache.clock;
      if (steps.length > 0) {
        this.#stamp(steps);
        const result = await core.store.commitSteps(core.roomId, expected, steps);
        if (!result.ok) {
          losingSince ||= Date.now();
          if (Date.now() - losingSince > COMMIT_RACE_BUDGET_MS) {
            for (const { push } of items) push.settle({ kind: "abandoned", attempts: attempt });
            remaining = state.remaining = remaining.slice(items.length);
            attempt = 1;
            losingSince = 0;
            continue;
          }
          // Another isolate committed first: take its changes, then re-plan against them. From
          // the second loss on, wait a random moment so that racing writers stop colliding.
          if (attempt >= 2) {
            core.options.link?.publish({ kind: "contention", clock: core.cache.clock });
            await sleep(Math.random() * Math.min(RETRY_JITTER_MS * attempt, RETRY_JITTER_MAX_MS));
          }
          attempt++;
          await this.#catchUp.now();
          continue;
        }
        core.committedHere();
        // The store committed as many steps as fit one write: the pushes from the first step it
        // left out on are planned again, against what was committed.
        const committed = result.clock - expected;
        if (committed < steps.length) {
          items = items.slice(0, items.findIndex((item) => item.clock === result.clock + 1));
          steps = steps.slice(0, committed);
        }
      }
      remaining = state.remaining = remaining.slice(items.length);
      attempt = 1;
      losingSince = 0;
      // After a commit, each session gets the group's events as one data frame (the batch window
      // is the commit), sent at once.
      if (steps.length > 0) core.sink.holdFrames();
      try {
        for (const item of items) this.#settle(item);
      } finally {
        core.sink.releaseFrames();
      }
      if (steps.length > 0) this.#committed(items);
    }
  }

  /** Marks the steps as this isolate's. */
  #stamp(steps: ChangeSet[]): void {
    for (const step of steps) step.writer = this.#core.options.isolateId;
  }

  /** How a group sees the room (push_group.ts): the cache, or as `after` will leave it. */
  #context(after?: InFlightGroup): GroupContext {
    const core = this.#core;
    const { schema, limits, presences } = core.options;
    const committedAt = (origin: string) => core.origins.clockOf(origin);
    return {
      schema,
      records: after?.records ?? core.cache.records,
      presences: after?.presences ?? presences,
      clock: after?.clock ?? core.cache.clock,
      roomChars: after?.roomChars ?? core.cache.roomChars,
      maxRoomBytes: limits.maxRoomBytes,
      maxRecordChars: limits.maxRecordChars,
      maxRecordIdChars: limits.maxRecordIdChars,
      legacyAppend: core.sink.legacyAppend,
      tombstones: core.cache.tombstones,
      committedAt: after
        ? (origin) => this.#inFlightOrigin(origin) ?? committedAt(origin)
        : committedAt,
    };
  }

  #inFlightOrigin(origin: string): number | undefined {
    for (const group of this.#inFlight) {
      const clock = group.origins.get(origin);
      if (clock !== undefined) return clock;
    }
    return undefined;
  }

  /** A push's outcome after its group's commit (or without one), in group order. */
  #settle(item: GroupItem<QueuedPush>): void {
    const { push, plan, clock } = item;
    if (item.committedAt !== undefined) {
      return push.settle({ kind: "duplicate", clock: item.committedAt });
    }
    if (item.rejection) {
      if (item.error) this.#core.log.error("push failed", { error: item.error });
      return push.settle({ kind: "rejected", reason: item.rejection });
    }
    if (!plan) return push.settle({ kind: "skipped" });
    if (clock !== undefined) {
      this.#core.cache.applyCommitted(plan.changeSet, clock, item.sizes);
      if (push.origin !== undefined) this.#core.origins.add(push.origin, clock);
    }
    push.settle({ kind: "planned", plan, clock });
  }

  /** A group was committed: the host and the other isolates learn of it. */
  #committed(items: readonly GroupItem<QueuedPush>[]): void {
    const core = this.#core;
    // Patches only go on the bus: a room alone on this isolate needs none.
    core.announce(core.cache.clock, committedSteps(items, core.options.peers.present));
    if (core.cache.tombstones.size > core.options.limits.maxTombstones) {
      void this.#queue.run(() => this.#pruneTombstones());
    }
  }

  /** Spec 7.3: drop the oldest tombstones (whole clock values) and move the history cutoff. */
  async #pruneTombstones(): Promise<void> {
    const { cache, store, roomId, options } = this.#core;
    const { maxTombstones, tombstonePruneBuffer } = options.limits;
    const excess = cache.tombstones.size - maxTombstones;
    if (excess <= 0) return;
    const clocks = [...cache.tombstones.values()].sort((a, b) => a - b);
    const drop = Math.min(clocks.length, excess + tombstonePruneBuffer);
    // Everything below the first kept clock goes; ties with the last dropped one go too.
    const lastDropped = clocks[drop - 1]!;
    const firstKept = clocks.find((c) => c > lastDropped);
    const startsAt = firstKept ?? cache.clock;
    if (await store.pruneTombstones(roomId, cache.clock, startsAt)) {
      cache.applyHistoryStart(startsAt);
    }
  }
}

/**
 * The steps a group committed, as another isolate reads them from the log, with the patches its
 * sessions were sent for records that existed before (a notice carries those instead of whole
 * records: a moved shape is a few dozen bytes, not several hundred) when `withPatches`.
 */
function committedSteps(items: readonly GroupItem<QueuedPush>[], withPatches: boolean): LogStep[] {
  const steps: LogStep[] = [];
  for (const { plan, clock, sizes } of items) {
    if (!plan || clock === undefined) continue;
    const { puts, deletes, origin } = plan.changeSet;
    const patches: RecordPatch[] = [];
    for (const [i, { record, prev }] of withPatches ? puts.entries() : []) {
      const change = prev ? plan.docDiff?.[record.id] : undefined;
      if (change?.[0] !== "patch") continue;
      const chars = sizes?.[i] ?? recordJson(record).length;
      patches.push({ id: record.id, diff: change[1] as ObjectDiff, chars });
    }
    steps.push({
      clock,
      puts: puts.map(({ record }) => ({ state: record, lastChangedClock: clock })),
      deletes: deletes.map(({ id }) => id),
      ...(origin === undefined ? {} : { origin }),
      ...(patches.length > 0 ? { patches } : {}),
    });
  }
  return steps;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

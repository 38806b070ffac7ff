/**
 * LiveStore sync semantics, independent of the transport: pull (with cursor, backendId check and paging),
 * live pull, and push (hooks, backendId check, serialized append with the head check, ack, broadcast).
 * Follows `@livestore/sync-cf` 0.4.0's Durable Object (shared/specs/livestore-sync.md, A.4).
 *
 * @module
 */
import type { Logger } from "../../log.ts";
import { withSpan } from "../../telemetry.ts";
import { AppendQueue } from "./append_queue.ts";
import type { AppendResult, EventStore, NewEvent, StoredEvent } from "./event_store.ts";
import type { HookContext, LivestoreHooks } from "./hooks.ts";
import type { LivePull, LivePullHub } from "./live_pulls.ts";
import { type PullSink, streamEvents } from "./pull_stream.ts";
import {
  describeZodError,
  frames,
  type PullPayload,
  PullPayloadSchema,
  type PushPayload,
  PushPayloadSchema,
  type ServerFrame,
  type SyncError,
  syncErrors,
} from "./wire.ts";

/** The outcome of a request, before it is framed for a transport. */
export type Outcome =
  | { kind: "success"; value?: unknown }
  | { kind: "failure"; error: SyncError }
  | { kind: "defect"; defect: string };

/** Frames an {@link Outcome} as the `Exit` of `requestId`. */
export function exitFrame(requestId: string, outcome: Outcome): ServerFrame {
  switch (outcome.kind) {
    case "success":
      return frames.success(requestId, outcome.value);
    case "failure":
      return frames.failure(requestId, outcome.error);
    case "defect":
      return frames.die(requestId, outcome.defect);
  }
}

/** Why a push batch is refused before it reaches the store. */
const BATCH_PROBLEMS = {
  not_chained: "each event's parentSeqNum must be the previous event's seqNum",
  not_next: "seqNum must be parentSeqNum + 1",
} as const;

/**
 * LiveStore numbers global events densely (next = parent + 1, also when rebasing), and pull page info
 * relies on that (`remaining = head - seqNum`), so a batch that is not a dense chain is refused.
 * sync-cf does not check this (a TODO there); a forged batch would otherwise corrupt the log for everyone.
 */
function batchProblem(batch: PushPayload["batch"]): keyof typeof BATCH_PROBLEMS | undefined {
  for (let i = 0; i < batch.length; i++) {
    const event = batch[i]!;
    if (event.seqNum !== event.parentSeqNum + 1) return "not_next";
    if (i > 0 && event.parentSeqNum !== batch[i - 1]!.seqNum) return "not_chained";
  }
  return undefined;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A started live pull, to be closed when the client interrupts or disconnects. */
export type PullHandle = Pick<LivePull, "close">;

/** Options for {@link LivestoreEngine}. */
export interface LivestoreEngineOptions {
  store: EventStore;
  hub: LivePullHub;
  hooks: LivestoreHooks;
  log: Logger;
  /** Shared with the hub, which records heads learnt from other processes. */
  queue?: AppendQueue;
  /**
   * Counts a client's push (keyed by store and client id); `true` refuses it with an
   * `UnknownError` saying so (the client retries later, with its events still pending).
   */
  pushLimit?: { isLimited(key: string): Promise<boolean>; describe: string };
}

/** Handles pulls and pushes for every store. */
export class LivestoreEngine {
  readonly #store: EventStore;
  readonly #hub: LivePullHub;
  readonly #hooks: LivestoreHooks;
  readonly #log: Logger;
  readonly #queue: AppendQueue;
  readonly #pushLimit: LivestoreEngineOptions["pushLimit"];
  /** backendIds never change while a log exists, so they are cached for the life of the process. */
  readonly #backendIds = new Map<string, Promise<string>>();

  constructor(options: LivestoreEngineOptions) {
    this.#store = options.store;
    this.#hub = options.hub;
    this.#hooks = options.hooks;
    this.#log = options.log;
    this.#queue = options.queue ?? new AppendQueue();
    this.#pushLimit = options.pushLimit;
  }

  #backendId(storeId: string): Promise<string> {
    let backendId = this.#backendIds.get(storeId);
    if (!backendId) {
      backendId = this.#store.open(storeId).then((context) => context.backendId);
      // A failed open must not poison the cache.
      backendId.catch(() => this.#backendIds.delete(storeId));
      this.#backendIds.set(storeId, backendId);
    }
    return backendId;
  }

  /** Runs a hook; a throw becomes `UnknownError` (its message is logged, not sent). */
  async #runHook(name: "onPull" | "onPush", run: () => unknown): Promise<SyncError | undefined> {
    try {
      await run();
      return undefined;
    } catch (error) {
      this.#log.info(`livestore ${name} hook rejected a request`, { error: errorMessage(error) });
      return syncErrors.unknown(`${name} rejected the request`);
    }
  }

  /** Parses and checks a pull request; on success returns the payload and the store's backendId. */
  async #preparePull(
    context: HookContext,
    rawPayload: unknown,
  ): Promise<
    { ok: true; request: PullPayload; backendId: string } | { ok: false; outcome: Outcome }
  > {
    const parsed = PullPayloadSchema.safeParse(rawPayload);
    if (!parsed.success) {
      return { ok: false, outcome: { kind: "defect", defect: describeZodError(parsed.error) } };
    }
    const request = parsed.data;
    if (request.storeId !== context.storeId) {
      return {
        ok: false,
        outcome: {
          kind: "failure",
          error: syncErrors.unknown("storeId does not match the connection's storeId"),
        },
      };
    }
    const hook = this.#hooks.onPull;
    if (hook) {
      const rejected = await this.#runHook("onPull", () => hook(request, context));
      if (rejected) return { ok: false, outcome: { kind: "failure", error: rejected } };
    }
    const backendId = await this.#backendId(context.storeId);
    if (request.cursor._tag === "Some" && request.cursor.value.backendId !== backendId) {
      return {
        ok: false,
        outcome: {
          kind: "failure",
          error: syncErrors.backendIdMismatch(backendId, request.cursor.value.backendId),
        },
      };
    }
    return { ok: true, request, backendId };
  }

  /**
   * A pull. Sends chunks to `sink`. Returns the final outcome for a non-live pull; for a live pull that
   * started, returns the handle and no outcome (a live pull never ends with `Exit`).
   */
  async pull(
    context: HookContext,
    rawPayload: unknown,
    sink: PullSink,
    { allowLive }: { allowLive: boolean },
  ): Promise<{ outcome: Outcome } | { live: PullHandle }> {
    try {
      const prepared = await this.#preparePull(context, rawPayload);
      if (!prepared.ok) return { outcome: prepared.outcome };
      const { request, backendId } = prepared;
      const after = request.cursor._tag === "Some" ? request.cursor.value.eventSequenceNumber : 0;
      if (allowLive && request.live) {
        return { live: await this.#hub.open(context.storeId, backendId, after, sink) };
      }
      await streamEvents(this.#store, context.storeId, backendId, after, sink, {
        emptyIfNothing: true,
      });
      return { outcome: { kind: "success" } };
    } catch (error) {
      this.#log.error("livestore pull failed", { storeId: context.storeId, error });
      return { outcome: { kind: "failure", error: syncErrors.unknown("pull failed") } };
    }
  }

  /** Appends in per-store order, refusing without a round trip when the parent is below a known head. */
  #append(storeId: string, events: NewEvent[]): Promise<AppendResult> {
    const parent = events[0]!.parentSeqNum;
    const refuse = (): AppendResult | undefined => {
      const known = this.#queue.knownHead(storeId);
      return known !== undefined && parent < known
        ? { ok: false, reason: "server_ahead", head: known }
        : undefined;
    };
    const early = refuse();
    if (early) return Promise.resolve(early);
    return this.#queue.run(storeId, async () => {
      const refused = refuse();
      if (refused) return refused;
      const result = await this.#store.append(storeId, events);
      this.#queue.observe(storeId, result.head);
      return result;
    });
  }

  /**
   * A push. `reply` gets the outcome; after a successful append the events are broadcast to live pulls
   * (the pusher's included) once the reply went out, as sync-cf does.
   */
  async push(
    context: HookContext,
    rawPayload: unknown,
    reply: (outcome: Outcome) => void,
  ): Promise<void> {
    const { outcome, broadcast } = await withSpan(
      "livestore.push",
      { "sync.store_id": context.storeId },
      async (span) => {
        const result = await this.#push(context, rawPayload);
        span.setAttribute("livestore.push.result", result.outcome.kind);
        return result;
      },
    );
    reply(outcome);
    broadcast?.();
  }

  async #push(
    context: HookContext,
    rawPayload: unknown,
  ): Promise<{ outcome: Outcome; broadcast?: () => void }> {
    const outcome = (o: Outcome) => ({ outcome: o });
    const parsed = PushPayloadSchema.safeParse(rawPayload);
    if (!parsed.success) return outcome({ kind: "defect", defect: describeZodError(parsed.error) });
    const request = parsed.data;
    if (request.storeId !== context.storeId) {
      return outcome({
        kind: "failure",
        error: syncErrors.unknown("storeId does not match the connection's storeId"),
      });
    }
    const first = request.batch[0];
    if (!first) return outcome({ kind: "success", value: {} });
    const hook = this.#hooks.onPush;
    if (hook) {
      const rejected = await this.#runHook("onPush", () => hook(request, context));
      if (rejected) return outcome({ kind: "failure", error: rejected });
    }
    if (
      this.#pushLimit && await this.#pushLimit.isLimited(`${context.storeId}|${first.clientId}`)
    ) {
      return outcome({
        kind: "failure",
        error: syncErrors.unknown("rate limited", `at most ${this.#pushLimit.describe}`),
      });
    }
    const problem = batchProblem(request.batch);
    if (problem) {
      return outcome({
        kind: "failure",
        error: syncErrors.unknown("invalid push batch", BATCH_PROBLEMS[problem]),
      });
    }
    try {
      const backendId = await this.#backendId(context.storeId);
      if (request.backendId._tag === "Some" && request.backendId.value !== backendId) {
        return outcome({
          kind: "failure",
          error: syncErrors.backendIdMismatch(backendId, request.backendId.value),
        });
      }
      const events: NewEvent[] = request.batch.map((event) => ({
        seqNum: event.seqNum,
        parentSeqNum: event.parentSeqNum,
        name: event.name,
        argsJson: event.args === undefined ? null : JSON.stringify(event.args),
        clientId: event.clientId,
        sessionId: event.sessionId,
      }));
      const result = await this.#append(context.storeId, events);
      if (!result.ok) {
        return outcome({
          kind: "failure",
          error: syncErrors.serverAhead(result.head, first.parentSeqNum),
        });
      }
      const stored: StoredEvent[] = events.map((event) => ({
        ...event,
        createdAt: result.createdAt,
      }));
      return {
        outcome: { kind: "success", value: {} },
        broadcast: () => this.#hub.publish(context.storeId, backendId, stored),
      };
    } catch (error) {
      this.#log.error("livestore push failed", { storeId: context.storeId, error });
      return outcome({ kind: "failure", error: syncErrors.unknown("push failed") });
    }
  }
}

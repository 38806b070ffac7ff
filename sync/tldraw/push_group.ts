/**
 * Group commit inside a room: pushes that queued up while a commit was in flight are planned in
 * arrival order, each against the state the ones before it leave, so that the changing ones can be
 * committed as one atomic store write with one clock step each (push_plan.ts plans one push).
 *
 * @module
 */
import {
  type CachedRecord,
  planPush,
  type PushPlan,
  type RecordSchema,
  SessionRejection,
} from "./push_plan.ts";
import { CloseReason, LimitReason, type SyncCloseReason } from "./protocol.ts";
import type { QueuedPush } from "./queued_push.ts";
import type { ChangeSet } from "./room_store.ts";
import type { WireRecord } from "./protocol.ts";
import { recordJson } from "./record_json.ts";

/** Most pushes handled together as one atomic store write. */
export const MAX_GROUP_PUSHES = 200;

/** A push of a group, planned against the group's speculative state. */
export interface GroupItem<P> {
  push: P;
  plan?: PushPlan;
  /** The clock its change is committed as (changing pushes only). */
  clock?: number;
  /** Why the push closes its session (it contributes nothing to the group). */
  rejection?: SyncCloseReason;
  /** Set with `rejection` when the reason was not the client's (an error to log). */
  error?: unknown;
  /** JSON length of each put record (serialized once). */
  sizes?: number[];
  /** Its origin was committed already, at this clock (it contributes nothing to the group). */
  committedAt?: number;
}

/** Values by id: the cache, or the cache as changed by groups planned before. */
export interface Lookup<V> {
  get(id: string): V | undefined;
}

/** What planning a group reads. */
export interface GroupContext {
  schema: RecordSchema;
  records: Lookup<CachedRecord>;
  presences: Lookup<WireRecord>;
  clock: number;
  roomChars: number;
  maxRoomBytes: number;
  maxRecordChars: number;
  maxRecordIdChars: number;
  legacyAppend: boolean;
  /** The ids with a committed tombstone (and so maybe a stored one). */
  tombstones: { has(id: string): boolean };
  /** The clock an origin was committed at, if it was. */
  committedAt(origin: string): number | undefined;
}

/** The cache as changed by the pushes planned before, within a group (and the groups before). */
class Overlay<V> implements Lookup<V> {
  readonly #base: Lookup<V>;
  readonly #changes = new Map<string, V | null>();
  constructor(base: Lookup<V>) {
    this.#base = base;
  }
  get(id: string): V | undefined {
    const changed = this.#changes.get(id);
    if (changed !== undefined) return changed ?? undefined;
    return this.#base.get(id);
  }
  set(id: string, value: V | null): void {
    this.#changes.set(id, value);
  }

  /** Whether `id` was deleted here or in an overlay below (its tombstone may be on its way). */
  deleted(id: string): boolean {
    if (this.#changes.get(id) === null) return true;
    return this.#base instanceof Overlay && this.#base.deleted(id);
  }
}

/** A planned group: its items, its steps, and the state it leaves (for planning the next one). */
export interface PlannedGroup<P> {
  items: GroupItem<P>[];
  steps: ChangeSet[];
  records: Lookup<CachedRecord>;
  presences: Lookup<WireRecord>;
  /** The clock and the document size after its steps. */
  clock: number;
  roomChars: number;
}

/**
 * Plans up to `take` of `pushes` in order against the cache as changed by the ones before. `steps`
 * holds one change set per changing push, to be committed as the clocks after `ctx.clock` (the
 * store may commit a prefix of them; the pushes after it are planned again).
 */
export function planGroup<P extends QueuedPush>(
  ctx: GroupContext,
  pushes: readonly P[],
  take: number,
): PlannedGroup<P> {
  const records = new Overlay(ctx.records);
  const presences = new Overlay(ctx.presences);
  const planContext = {
    schema: ctx.schema,
    records,
    presences,
    maxRecordChars: ctx.maxRecordChars,
    maxRecordIdChars: ctx.maxRecordIdChars,
    legacyAppend: ctx.legacyAppend,
  };
  const items: GroupItem<P>[] = [];
  const steps: ChangeSet[] = [];
  const rejected = new Set<unknown>();
  let clock = ctx.clock;
  let roomChars = ctx.roomChars;
  for (const push of pushes) {
    if (items.length >= take) break;
    if (rejected.has(push.key)) {
      items.push({ push });
      continue;
    }
    const committedAt = push.origin === undefined ? undefined : ctx.committedAt(push.origin);
    if (committedAt !== undefined) {
      items.push({ push, committedAt });
      continue;
    }
    let plan: PushPlan;
    try {
      plan = planPush(planContext, push.client, push.message);
      if (
        plan.docDiff && plan.bytesDelta > 0 && roomChars + plan.bytesDelta > ctx.maxRoomBytes
      ) {
        throw new SessionRejection(LimitReason.ROOM_TOO_LARGE);
      }
    } catch (error) {
      rejected.add(push.key);
      items.push(
        error instanceof SessionRejection
          ? { push, rejection: error.reason }
          : { push, rejection: CloseReason.UNKNOWN_ERROR, error },
      );
      continue;
    }
    let stepClock: number | undefined;
    let sizes: number[] | undefined;
    if (plan.docDiff) {
      for (const put of plan.changeSet.puts) {
        const id = put.record.id;
        if (!put.prev && !ctx.tombstones.has(id) && !records.deleted(id)) put.noTombstone = true;
      }
      sizes = plan.changeSet.puts.map(({ record }) => recordJson(record).length);
      stepClock = ++clock;
      roomChars += plan.bytesDelta;
      plan.changeSet.puts.forEach(({ record }, i) =>
        records.set(record.id, { state: record, lastChangedClock: stepClock!, chars: sizes![i]! })
      );
      for (const { id } of plan.changeSet.deletes) records.set(id, null);
      if (push.origin !== undefined) plan.changeSet.origin = push.origin;
      steps.push(plan.changeSet);
    }
    if (plan.presence && push.client.presenceId) {
      presences.set(push.client.presenceId, plan.presence.record);
    }
    items.push({ push, plan, clock: stepClock, sizes });
  }
  return { items, steps, records, presences, clock, roomChars };
}

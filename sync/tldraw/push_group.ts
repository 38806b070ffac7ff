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
  type PlanSession,
  type PushPlan,
  type RecordSchema,
  SessionRejection,
} from "./push_plan.ts";
import { CloseReason, LimitReason, type PushRequest, type SyncCloseReason } from "./protocol.ts";
import type { ChangeSet } from "./room_store.ts";
import type { WireRecord } from "./protocol.ts";
import { recordJson } from "./record_json.ts";

/** Most pushes handled together as one atomic store write. */
export const MAX_GROUP_PUSHES = 200;
// A conservative estimate of a group's size (KV: 1,000 mutations and 800 KiB per atomic operation;
// the store answers too_large beyond that and the group is cut smaller). A record changed by
// several pushes of the group is written once; the change log takes about one write per 50 KB.
const MAX_GROUP_MUTATIONS = 600;
const MAX_GROUP_CHARS = 300_000;
const LOG_SLOT_CHARS = 50_000;

/** How the group sees one queued push. */
export interface GroupPush {
  message: PushRequest;
  session: PlanSession;
  /** Pushes with the same key come from one client: after one is rejected, the rest are skipped. */
  key: unknown;
  /** Set for pushes that were (or may have been) forwarded: the step carries it (forwarding.ts). */
  origin?: string | undefined;
}

/** A push of a group, planned against the group's speculative state. */
export interface GroupItem<E> {
  entry: E;
  plan?: PushPlan;
  /** The clock its change is committed as (changing pushes only). */
  clock?: number;
  /** Why the push closes its session (it contributes nothing to the group). */
  rejection?: SyncCloseReason;
  /** JSON length of each put record (serialized once). */
  sizes?: number[];
  /** Its origin was committed already, at this clock (it contributes nothing to the group). */
  committedAt?: number;
}

/** What planning a group reads. */
export interface GroupContext<E> {
  schema: RecordSchema;
  records: ReadonlyMap<string, CachedRecord>;
  presences: ReadonlyMap<string, WireRecord>;
  clock: number;
  roomChars: number;
  maxRoomBytes: number;
  maxRecordChars: number;
  maxRecordIdChars: number;
  legacyAppend: boolean;
  describe(entry: E): GroupPush;
  /** The clock an origin was committed at, if it was. */
  committedAt(origin: string): number | undefined;
  /** A push failed for a reason that is not the client's (logged; it closes the session). */
  onError(entry: E, error: unknown): void;
}

/** The cache as changed by the pushes planned before, within a group. */
class Overlay<V> {
  readonly #base: ReadonlyMap<string, V>;
  readonly #changes = new Map<string, V | null>();
  constructor(base: ReadonlyMap<string, V>) {
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
}

/**
 * Plans up to `take` of `entries` in order against the cache as changed by the ones before; stops
 * early when the group's writes would not fit one atomic operation. `steps` holds one change set
 * per changing push, to be committed as the clocks after `ctx.clock`.
 */
export function planGroup<E>(
  ctx: GroupContext<E>,
  entries: readonly E[],
  take: number,
): { items: GroupItem<E>[]; steps: ChangeSet[] } {
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
  const items: GroupItem<E>[] = [];
  const steps: ChangeSet[] = [];
  const rejected = new Set<unknown>();
  let clock = ctx.clock;
  let roomChars = ctx.roomChars;
  let mutations = 0;
  let chars = 0;
  let groupLogChars = 0;
  /** Records the group writes already (a later write of one replaces the earlier, same key). */
  const written = new Set<string>();
  for (const entry of entries) {
    if (items.length >= take) break;
    const push = ctx.describe(entry);
    if (rejected.has(push.key)) {
      items.push({ entry });
      continue;
    }
    const committedAt = push.origin === undefined ? undefined : ctx.committedAt(push.origin);
    if (committedAt !== undefined) {
      items.push({ entry, committedAt });
      continue;
    }
    let plan: PushPlan;
    try {
      plan = planPush(planContext, push.session, push.message);
      if (
        plan.docDiff && plan.bytesDelta > 0 && roomChars + plan.bytesDelta > ctx.maxRoomBytes
      ) {
        throw new SessionRejection(LimitReason.ROOM_TOO_LARGE);
      }
    } catch (error) {
      let reason: SyncCloseReason = CloseReason.UNKNOWN_ERROR;
      if (error instanceof SessionRejection) reason = error.reason;
      else ctx.onError(entry, error);
      rejected.add(push.key);
      items.push({ entry, rejection: reason });
      continue;
    }
    let stepClock: number | undefined;
    let sizes: number[] | undefined;
    if (plan.docDiff) {
      sizes = plan.changeSet.puts.map(({ record }) => recordJson(record).length);
      // Its log entry, and each record (with its tombstone and chunks) the group did not write yet.
      let stepLogChars = 100;
      let stepChars = 0;
      let stepMutations = 0;
      plan.changeSet.puts.forEach(({ record }, i) => {
        const size = sizes![i]!;
        stepLogChars += size + 40;
        if (written.has(record.id)) return;
        stepChars += size + 100;
        stepMutations += 2 + Math.ceil(size / 20_000);
      });
      for (const { id } of plan.changeSet.deletes) {
        stepLogChars += id.length + 4;
        if (!written.has(id)) stepMutations += 4;
      }
      const logChars = groupLogChars + stepLogChars;
      const stepTotal = mutations + stepMutations + 2 + Math.ceil(logChars / LOG_SLOT_CHARS);
      if (
        steps.length > 0 &&
        (stepTotal > MAX_GROUP_MUTATIONS || chars + stepChars + logChars > MAX_GROUP_CHARS)
      ) break;
      mutations += stepMutations;
      chars += stepChars;
      groupLogChars = logChars;
      for (const { record } of plan.changeSet.puts) written.add(record.id);
      for (const { id } of plan.changeSet.deletes) written.add(id);
      stepClock = ++clock;
      roomChars += plan.bytesDelta;
      plan.changeSet.puts.forEach(({ record }, i) =>
        records.set(record.id, { state: record, lastChangedClock: stepClock!, chars: sizes![i]! })
      );
      for (const { id } of plan.changeSet.deletes) records.set(id, null);
      if (push.origin !== undefined) plan.changeSet.origin = push.origin;
      steps.push(plan.changeSet);
    }
    if (plan.presence && push.session.presenceId) {
      presences.set(push.session.presenceId, plan.presence.record);
    }
    items.push({ entry, plan, clock: stepClock, sizes });
  }
  return { items, steps };
}

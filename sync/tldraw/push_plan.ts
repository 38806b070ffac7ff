/**
 * Evaluating a push against a room's cached state (spec 3.4 and 5.1), without side effects: the room
 * engine commits the resulting change set and only then applies it. Also the schema helpers the
 * engine needs (validation and migrations come from `@tldraw/store`'s `StoreSchema`).
 *
 * @module
 */
import type { RecordType, SerializedSchema, StoreSchema, UnknownRecord } from "@tldraw/store";
import { applyObjectDiff, diffRecord, type ObjectDiff } from "./diff.ts";
import {
  CloseReason,
  LimitReason,
  type PushRequest,
  type SyncCloseReason,
  type WireNetworkDiff,
  type WireRecord,
  type WireSchema,
} from "./protocol.ts";
import type { ChangeSet, StoredRecord } from "./room_store.ts";
import { recordJson } from "./record_json.ts";

/** A fatal problem with one session's input: the session is closed with 4099 + `reason`. */
export class SessionRejection extends Error {
  constructor(readonly reason: SyncCloseReason, message: string = reason) {
    super(message);
    this.name = "SessionRejection";
  }
}

/** Full records of a change: `puts[id]` is the new record or `[before, after]`. */
export interface ForwardDiff {
  /** `[before, after, diff]`: the diff between them is known (a patch another isolate sent). */
  puts: Record<
    string,
    WireRecord | [WireRecord, WireRecord] | [WireRecord, WireRecord, ObjectDiff]
  >;
  deletes: string[];
}

/** A cached document record with the length of its JSON (for the room size limit). */
export interface CachedRecord extends StoredRecord {
  chars: number;
}

/** A push evaluated against the cache, not yet committed. */
export interface PushPlan {
  /** The effective document change as sent to others, `undefined` when nothing changed. */
  docDiff: WireNetworkDiff | undefined;
  docForward: ForwardDiff;
  /** What to commit. */
  changeSet: ChangeSet;
  /** Change of the room's JSON size. */
  bytesDelta: number;
  /** The session's new presence record, when it changed. */
  presence: { record: WireRecord; diff: WireNetworkDiff; forward: ForwardDiff } | undefined;
}

// Patches from the diff algebra are typed loosely on the wire.
type WirePatch = Record<string, [string]>;

/**
 * `forward` as a NetworkDiff (puts as puts, updates as patches). `legacyAppend`: no string appends
 * (some connected client speaks protocol 7 or older).
 */
export function toNetworkDiff(forward: ForwardDiff, legacyAppend = false): WireNetworkDiff {
  const diff: WireNetworkDiff = {};
  for (const [id, put] of Object.entries(forward.puts)) {
    if (Array.isArray(put)) {
      const patch = put.length === 3 && !legacyAppend
        ? put[2]
        : diffRecord(put[0], put[1], legacyAppend);
      if (patch) diff[id] = ["patch", patch as WirePatch];
    } else diff[id] = ["put", put];
  }
  for (const id of forward.deletes) diff[id] = ["remove"];
  return diff;
}

const recordSchemas = new WeakMap<StoreSchema<UnknownRecord, unknown>, RecordSchema>();

/** The server's record schema: validation, migrations, scopes. */
export class RecordSchema {
  /**
   * The one instance for `store`, shared by every room that uses it: building the tldraw schema
   * and its derived tables took 2–30 ms of each room load, and `StoreSchema` caches migrations.
   */
  static for(store: StoreSchema<UnknownRecord, unknown>): RecordSchema {
    let schema = recordSchemas.get(store);
    if (!schema) recordSchemas.set(store, schema = new RecordSchema(store));
    return schema;
  }

  readonly store: StoreSchema<UnknownRecord, unknown>;
  readonly serialized: SerializedSchema;
  /** Document-scoped type names (the only ones a push may put). */
  readonly documentTypes: ReadonlySet<string>;
  /** The presence type (at most one), or `null`. */
  readonly presenceType: RecordType<UnknownRecord, never> | null;

  constructor(store: StoreSchema<UnknownRecord, unknown>) {
    this.store = store;
    this.serialized = store.serialize();
    const types = Object.values(store.types) as RecordType<UnknownRecord, never>[];
    this.documentTypes = new Set(
      types.filter((t) => t.scope === "document").map((t) => t.typeName),
    );
    this.presenceType = types.find((t) => t.scope === "presence") ?? null;
  }

  /** The serialized schema as it travels on the wire. */
  get wire(): WireSchema {
    return this.serialized as unknown as WireSchema;
  }

  /** Validates with the record type's validator; INVALID_RECORD on failure. */
  validate(record: WireRecord): void {
    const type = this.store.types[record.typeName] as RecordType<UnknownRecord, never> | undefined;
    if (!type) throw new SessionRejection(CloseReason.INVALID_RECORD, "unknown type");
    try {
      type.validate(record);
    } catch (error) {
      throw new SessionRejection(
        CloseReason.INVALID_RECORD,
        error instanceof Error ? error.message : String(error),
      );
    }
  }

  /**
   * Migrates a record between `clientSchema` and the server's (`up` = towards the server). `null`
   * means the client is current: the record is returned as is. Failure is CLIENT_TOO_OLD.
   */
  migrate(record: WireRecord, clientSchema: SerializedSchema | null, direction: "up" | "down") {
    if (!clientSchema) return record;
    const result = this.store.migratePersistedRecord(
      record as unknown as UnknownRecord,
      clientSchema,
      direction,
    );
    if (result.type === "error") throw new SessionRejection(CloseReason.CLIENT_TOO_OLD);
    return result.value as unknown as WireRecord;
  }

  /** A change as a NetworkDiff for a client on `clientSchema` (records migrated down). */
  diffFor(
    forward: ForwardDiff,
    clientSchema: SerializedSchema | null,
    legacyAppend = false,
  ): WireNetworkDiff {
    if (!clientSchema) return toNetworkDiff(forward, legacyAppend);
    const result: WireNetworkDiff = {};
    for (const [id, put] of Object.entries(forward.puts)) {
      if (Array.isArray(put)) {
        const before = this.migrate(put[0], clientSchema, "down");
        const after = this.migrate(put[1], clientSchema, "down");
        const patch = diffRecord(before, after, legacyAppend);
        if (patch) result[id] = ["patch", patch as WirePatch];
      } else {
        result[id] = ["put", this.migrate(put, clientSchema, "down")];
      }
    }
    for (const id of forward.deletes) result[id] = ["remove"];
    return result;
  }

  /** Why a client schema the server cannot migrate from is refused (spec 4.3). */
  mismatchReason(theirs: SerializedSchema): CloseReason {
    const ours = this.serialized;
    if (theirs.schemaVersion > ours.schemaVersion) return CloseReason.SERVER_TOO_OLD;
    if (theirs.schemaVersion === 2 && ours.schemaVersion === 2) {
      const sequences = (theirs as { sequences?: Record<string, number> }).sequences ?? {};
      for (const [id, version] of Object.entries(sequences)) {
        const our = ours.sequences[id];
        if (our === undefined || version > our) return CloseReason.SERVER_TOO_OLD;
      }
    }
    return CloseReason.CLIENT_TOO_OLD;
  }
}

/** What a plan reads. */
export interface PlanContext {
  schema: RecordSchema;
  /** The cache (or the cache as changed by earlier pushes of a group). */
  records: { get(id: string): CachedRecord | undefined };
  presences: { get(id: string): WireRecord | undefined };
  maxRecordChars: number;
  maxRecordIdChars: number;
  /** Some connected client cannot apply string appends (protocol < 8). */
  legacyAppend: boolean;
}

/** The pushing session (`null` for server-side changes). */
export interface PlanSession {
  isReadonly: boolean;
  presenceId: string | null;
  /** The client's schema when it differs from the server's (records need migrating), else null. */
  clientSchema: SerializedSchema | null;
}

/**
 * Evaluates a push: presence first (memory only), then the document ops in object order, all or
 * nothing. Throws {@link SessionRejection} for input that must close the session.
 */
export function planPush(
  ctx: PlanContext,
  session: PlanSession | null,
  message: PushRequest,
): PushPlan {
  const { schema } = ctx;
  const clientSchema = session?.clientSchema ?? null;
  const overlay = new Map<string, WireRecord | null>();
  const get = (id: string): WireRecord | undefined =>
    overlay.has(id) ? overlay.get(id) ?? undefined : ctx.records.get(id)?.state;
  const sizeInCache = (id: string, state: WireRecord): number => {
    const cached = ctx.records.get(id);
    return cached && cached.state === state ? cached.chars : recordJson(state).length;
  };
  const sizeOf = (record: WireRecord): number => {
    const chars = recordJson(record).length;
    if (chars > ctx.maxRecordChars) throw new SessionRejection(LimitReason.RECORD_TOO_LARGE);
    return chars;
  };
  const up = (record: WireRecord) => schema.migrate(record, clientSchema, "up");
  /** Patches `prev` with a client ObjectDiff, through the client's version when it is older. */
  const applyPatch = (prev: WireRecord, patch: ObjectDiff): [ObjectDiff, WireRecord] | null => {
    const downgraded = schema.migrate(prev, clientSchema, "down");
    let next: WireRecord;
    if (downgraded === prev) {
      next = applyObjectDiff(prev, patch);
      if (next === prev) return null;
    } else {
      next = up(applyObjectDiff(downgraded, patch));
    }
    const diff = diffRecord(prev, next, ctx.legacyAppend);
    if (!diff) return null;
    schema.validate(next);
    return [diff, next];
  };

  // 1. Presence: forced to the session's id and type; in memory only, never on the clock.
  let presence: PushPlan["presence"];
  if (session?.presenceId && schema.presenceType && message.presence) {
    const id = session.presenceId;
    const typeName = schema.presenceType.typeName;
    const prev = ctx.presences.get(id);
    const [op, value] = message.presence;
    let next: WireRecord | undefined;
    let diff: ObjectDiff | null = null;
    if (op === "put") {
      next = up({ ...(value as Record<string, unknown>), id, typeName });
      if (prev) {
        diff = diffRecord(prev, next);
        if (diff) schema.validate(next);
        else next = undefined;
      } else schema.validate(next);
    } else if (prev) {
      const patched = applyPatch(prev, {
        ...(value as ObjectDiff),
        id: ["put", id],
        typeName: ["put", typeName],
      });
      if (patched) [diff, next] = patched;
    }
    if (next) {
      presence = {
        record: next,
        diff: { [id]: diff ? ["patch", diff as WirePatch] : ["put", next] },
        forward: { puts: { [id]: prev && diff ? [prev, next] : next }, deletes: [] },
      };
    }
  }

  // 2. Document ops. The write gate comes before validation: read-only ops are skipped silently.
  const canWrite = !session || !session.isReadonly;
  const docDiff: WireNetworkDiff = {};
  const docForward: ForwardDiff = { puts: {}, deletes: [] };
  let bytesDelta = 0;
  for (const [id, op] of Object.entries(message.diff ?? {})) {
    if (id.length > ctx.maxRecordIdChars) {
      throw new SessionRejection(CloseReason.INVALID_RECORD, "record id too long");
    }
    switch (op[0]) {
      case "put": {
        const incoming = op[1];
        if (!canWrite) continue;
        if (!schema.documentTypes.has(incoming.typeName)) {
          throw new SessionRejection(CloseReason.INVALID_RECORD, "not a document type");
        }
        if (incoming.id !== id) {
          throw new SessionRejection(CloseReason.UNKNOWN_ERROR, "diff key is not the record id");
        }
        const prev = get(id);
        if (prev && prev.typeName !== incoming.typeName) continue;
        const state = up(incoming);
        if (prev) {
          // A put over an existing record is stored, and sent on, as a patch.
          const diff = diffRecord(prev, state);
          if (!diff) continue;
          schema.validate(state);
          docDiff[id] = ["patch", diff as WirePatch];
          docForward.puts[id] = [prev, state];
        } else {
          schema.validate(state);
          docDiff[id] = ["put", state];
          docForward.puts[id] = state;
        }
        bytesDelta += sizeOf(state) - (prev ? sizeInCache(id, prev) : 0);
        overlay.set(id, state);
        break;
      }
      case "patch": {
        const prev = get(id);
        if (!prev || !canWrite) continue;
        const patched = applyPatch(prev, op[1] as ObjectDiff);
        if (!patched) continue;
        const [diff, next] = patched;
        // The store keys records by id and scopes them by type: a patch may change neither (the
        // reference's storage assertion closes such a session with UNKNOWN_ERROR, like a put whose
        // diff key is not its id).
        if (next.id !== id || next.typeName !== prev.typeName) {
          throw new SessionRejection(
            CloseReason.UNKNOWN_ERROR,
            "a patch may not change a record's id or typeName",
          );
        }
        docDiff[id] = ["patch", diff as WirePatch];
        docForward.puts[id] = [prev, next];
        bytesDelta += sizeOf(next) - sizeInCache(id, prev);
        overlay.set(id, next);
        break;
      }
      case "remove": {
        const prev = get(id);
        if (!prev || !canWrite) continue;
        docDiff[id] = ["remove"];
        docForward.deletes.push(id);
        bytesDelta -= sizeInCache(id, prev);
        overlay.set(id, null);
        break;
      }
    }
  }
  const changeSet: ChangeSet = { puts: [], deletes: [] };
  for (const [id, state] of overlay) {
    const cached = ctx.records.get(id);
    if (state) changeSet.puts.push({ record: state, prev: cached });
    else if (cached) changeSet.deletes.push({ id, prev: cached });
  }
  return {
    docDiff: Object.keys(docDiff).length > 0 ? docDiff : undefined,
    docForward,
    changeSet,
    bytesDelta,
    presence,
  };
}

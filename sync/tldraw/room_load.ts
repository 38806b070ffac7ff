/**
 * Loading a room's document: from the store, or created with tldraw's default document when it was
 * never stored (two isolates creating it at once both end up with the one that won), and the one-off
 * migration of records stored under an older schema.
 *
 * @module
 */
import { DEFAULT_INITIAL_SNAPSHOT } from "@tldraw/sync-core";
import type { SerializedSchema, UnknownRecord } from "@tldraw/store";
import { isEqual } from "@tldraw/utils";
import type { Logger } from "../../log.ts";
import type { RecordSchema } from "./push_plan.ts";
import type { WireRecord, WireSchema } from "./protocol.ts";
import type { RoomCache } from "./room_cache.ts";
import {
  type ChangeSet,
  type DocumentStore,
  type RoomData,
  RoomStoreError,
  StoreFailure,
} from "./room_store.ts";

/** The room as stored, or (created now) tldraw's default document and page. */
export async function loadOrCreate(
  store: DocumentStore,
  roomId: string,
  schema: RecordSchema,
): Promise<RoomData> {
  const data = await store.load(roomId);
  if (data) return data;
  const initial: RoomData = {
    meta: { documentClock: 0, tombstoneHistoryStartsAtClock: 0, schema: schema.wire },
    records: DEFAULT_INITIAL_SNAPSHOT.documents.map((d) => ({
      state: structuredClone(d.state) as unknown as WireRecord,
      lastChangedClock: 0,
    })),
    tombstones: new Map(),
  };
  // Another isolate may create it at the same moment; then load theirs.
  if (await store.create(roomId, initial)) return initial;
  const theirs = await store.load(roomId);
  if (!theirs) {
    throw new RoomStoreError(StoreFailure.missing, `room ${roomId} vanished while being created`);
  }
  return theirs;
}

/**
 * The change that migrates the cached records up from `stored` (the schema they were stored
 * under) to the server's, or `undefined` when they are current. Committed once, as one clock.
 */
export function migrationOf(
  cache: RoomCache,
  schema: RecordSchema,
  stored: WireSchema | null,
  log: Logger,
): ChangeSet | undefined {
  if (!stored || isEqual(stored, schema.serialized)) return undefined;
  const from = stored as unknown as SerializedSchema;
  const migrations = schema.store.getMigrationsSince(from);
  if (!migrations.ok || migrations.value.length === 0) return undefined;
  const changeSet: ChangeSet = { puts: [], deletes: [], schema: schema.wire };
  for (const cached of cache.records.values()) {
    const result = schema.store.migratePersistedRecord(
      cached.state as unknown as UnknownRecord,
      from,
      "up",
    );
    if (result.type === "error") {
      log.error("stored record migration failed", { id: cached.state.id });
      continue;
    }
    const next = result.value as unknown as WireRecord;
    if (!isEqual(next, cached.state)) changeSet.puts.push({ record: next, prev: cached });
  }
  return changeSet;
}

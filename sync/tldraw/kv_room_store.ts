/**
 * A {@link RoomStore} on Deno KV, the source of truth for rooms across isolates.
 *
 * Keys (all under `["tldraw", roomId]`):
 *
 * | key | value |
 * |---|---|
 * | `meta` | `{documentClock, tombstoneHistoryStartsAtClock, w, at}` (`w`, `at`: the writer); its versionstamp orders commits |
 * | `schema` | the serialized schema the records conform to (written only when it changes) |
 * | `rec, id` | `{c: lastChangedClock, j: json}` or, above one chunk, `{c, n: pieces}` |
 * | `chunk, id, c, i` | piece `i` of the record's JSON written at clock `c` (immutable once written) |
 * | `tomb, id` | clock of the deletion |
 * | `ring, clock % logSize` | the change log, a ring of {@link KvRoomStoreOptions.logSize} slots: the entries `s` of the clocks `f`…`c` one commit wrote, in the slot of `c` (per clock: ids written `{p, d}`, the values `j` when small, the origin `o` of a forwarded push) |
 * | `sess, sessionId` | a {@link SessionEntry}, with `expireIn` |
 * | `snap` | `{id, clock, pieces}`: the newest compacted snapshot (see {@link KvRoomStore.saveSnapshot}) |
 * | `snapchunk, id, i` | piece `i` of snapshot `id`: lines `clock<TAB>json` of every record |
 *
 * A commit is one `kv.atomic()` that checks the meta versionstamp, so a lost race is detected rather
 * than overwritten. Chunk keys carry the clock that wrote them, so a reader that saw a head never
 * mixes pieces of two versions.
 *
 * @module
 */
import { KvBatcher } from "./kv_batcher.ts";
import type { WireRecord, WireSchema } from "./protocol.ts";
import {
  type ChangeSet,
  type ChangesSince,
  CommitError,
  type CommitResult,
  type LogStep,
  type RoomData,
  type RoomMeta,
  type RoomStore,
  type SessionEntry,
  type StepsSince,
  type StoredRecord,
} from "./room_store.ts";
import {
  LazyRecord,
  recordJson,
  rememberRecordJson,
  storedRecordId,
  storedRecordJson,
} from "./record_json.ts";

/** Characters per chunk: at most 60 KB even when V8 stores the string as UTF-16 (KV: 64 KiB). */
export const CHUNK_CHARS = 30_000;
// KV allows 1000 mutations and 800 KiB per atomic operation; keep a margin for keys and meta.
const MAX_MUTATIONS = 990;
const MAX_ATOMIC_BYTES = 780_000;
// Bytes of a meta value (two clocks, maybe a staged-commit pointer), with a margin.
const META_SIZE = 300;
// kv.list returns at most this many entries per round trip.
const LIST_BATCH_SIZE = 500;
// kv.getMany reads at most 10 keys.
const GET_MANY_LIMIT = 10;
// Staging pieces written per atomic operation (10 × 60 KB).
const STAGE_PIECES_PER_OP = 10;
// A log entry listing more ids than this is stored as "bulk": readers of it reload the room.
const MAX_LOG_ENTRY_CHARS = 50_000;
// Most bytes of log entries one slot holds (KV: 64 KiB a value).
const MAX_LOG_SLOT_BYTES = 56_000;
// Below this (stored bytes) a log entry carries the records' JSON too: another isolate then forwards
// exactly what was written at that clock with one range read, instead of reading the records (which
// may have changed again since). Most pushes are a few hundred bytes.
const MAX_LOG_VALUE_BYTES = 48_000;

type Head = { c: number; j: string } | { c: number; n: number };
/** A staged commit the meta points at until it is fully applied. */
type Pending = { stageId: string; pieces: number; clock: number };
/**
 * The meta as stored. The schema has its own key: kept in the meta (as rooms written before did, and
 * which is still read) it was ~2 KB of every commit. A legacy inline schema moves to its key with
 * the room's next commit.
 */
type StoredMeta = Omit<RoomMeta, "schema" | "writer"> & {
  schema?: RoomMeta["schema"];
  pending?: Pending;
  /** The writer's isolate id and commit time (RoomMeta.writer). */
  w?: string;
  at?: number;
};
type IdsEntry = { p: string[]; d: string[]; j?: string[]; o?: string };
type LogEntry = IdsEntry | { bulk: true; o?: string };
/**
 * A change-log slot: the entries of the clocks `f`…`c` (one commit's, or a part of one), stored in
 * the slot of `c`. The slots of `f`…`c − 1` are left as they were: a reader knows a slot's entries
 * are the ones it looks for by `c` (an older lap's, or a later one's, have another).
 */
type LogSlot = { f: number; c: number; s: LogEntry[] };

/** Options for {@link KvRoomStore}. */
export interface KvRoomStoreOptions {
  /** Change-log entries kept per room; clients further behind get `wipe_all`. Default 1000. */
  logSize?: number;
  /** Key prefix (default `["tldraw"]`). */
  prefix?: Deno.KvKey;
  /**
   * Merge commits of different rooms and session writes issued while another write is in flight
   * into one atomic operation (group commit, see kv_batcher.ts). Default `true`.
   */
  groupCommit?: boolean;
  /**
   * Another handle on the same KV file, for reads. On a local SQLite file a handle runs its
   * operations one after another, so reads on the writing handle wait behind its writes — and
   * behind the write lock another process or Worker holds (measured with two writers: read p99
   * 21 ms and 25× fewer reads than on a separate handle). Until the promise resolves, and without
   * it, reads use the main handle. Closed by {@link KvRoomStore.closeReader}.
   */
  readKv?: Deno.Kv | Promise<Deno.Kv>;
  /**
   * Load a room from its compacted snapshot (plus the change log after it) when there is one that
   * the log still reaches: a few dozen reads instead of one per record. Default `true`.
   */
  snapshots?: boolean;
}

/** The `snap` key's value: which pieces hold the snapshot, and the clock it was taken at. */
type SnapshotHead = { id: string; clock: number; pieces: number };

/** A {@link RoomStore} on Deno KV. */
export class KvRoomStore implements RoomStore {
  readonly #kv: Deno.Kv;
  readonly #logSize: number;
  readonly #prefix: Deno.KvKey;
  readonly #batcher: KvBatcher | undefined;
  #readKv: Deno.Kv;
  readonly #openingReader: Promise<Deno.Kv | undefined> | undefined;
  /** Last meta this isolate saw per room, to skip a read before committing. */
  readonly #known = new Map<string, { meta: StoredMeta; versionstamp: string }>();
  readonly #snapshots: boolean;

  constructor(kv: Deno.Kv, options: KvRoomStoreOptions = {}) {
    this.#kv = kv;
    this.#snapshots = options.snapshots ?? true;
    this.#logSize = options.logSize ?? 1000;
    this.#prefix = options.prefix ?? ["tldraw"];
    this.#batcher = options.groupCommit === false ? undefined : new KvBatcher(kv);
    this.#readKv = kv;
    this.#openingReader = options.readKv
      ? Promise.resolve(options.readKv).then((readKv) => this.#readKv = readKv, () => undefined)
      : undefined;
  }

  /** Closes the read handle given as `readKv` (if any); later reads use the main handle. */
  async closeReader(): Promise<void> {
    const reader = await this.#openingReader;
    this.#readKv = this.#kv;
    if (reader && reader !== this.#kv) reader.close();
  }

  /**
   * Commits one atomic write, through the group-commit batcher when enabled. `size.checked` lists
   * the checks `apply` makes (see `BatchedWrite.checked` in kv_batcher.ts).
   */
  #write(
    group: string,
    size: {
      checks: number;
      mutations: number;
      bytes: number;
      checked?: readonly Deno.AtomicCheck[];
    },
    apply: (op: Deno.AtomicOperation) => void,
  ): Promise<Deno.KvCommitResult | Deno.KvCommitError> {
    if (this.#batcher) return this.#batcher.commit({ group, ...size, apply });
    const op = this.#kv.atomic();
    apply(op);
    return op.commit();
  }

  /** See {@link RoomStore.writeSlot}. */
  writeSlot(): Promise<void> | undefined {
    return this.#batcher?.writeSlot();
  }

  #key(roomId: string, ...parts: Deno.KvKeyPart[]): Deno.KvKey {
    return [...this.#prefix, roomId, ...parts];
  }

  async #readMeta(roomId: string): Promise<Deno.KvEntryMaybe<StoredMeta>> {
    const entry = await this.#readKv.get<StoredMeta>(this.#key(roomId, "meta"));
    if (entry.value && entry.versionstamp) {
      this.#known.set(roomId, { meta: entry.value, versionstamp: entry.versionstamp });
    } else this.#known.delete(roomId);
    return entry;
  }

  /** Reads the meta, first finishing a staged commit it points at. */
  async #settledMeta(roomId: string): Promise<Deno.KvEntryMaybe<StoredMeta>> {
    for (;;) {
      const entry = await this.#readMeta(roomId);
      if (!entry.value?.pending) return entry;
      await this.#rollForward(roomId, entry);
    }
  }

  async #listAll<T>(roomId: string, ...parts: Deno.KvKeyPart[]): Promise<Deno.KvEntry<T>[]> {
    const entries: Deno.KvEntry<T>[] = [];
    const iter = this.#readKv.list<T>({ prefix: this.#key(roomId, ...parts) }, {
      batchSize: LIST_BATCH_SIZE,
    });
    for await (const entry of iter) entries.push(entry);
    return entries;
  }

  /** A changed schema (or a legacy inline one, moving out of the meta) goes to its own key. */
  #writeSchema(writes: Writes, roomId: string, schema: WireSchema | null | undefined): void {
    if (schema) writes.set(this.#key(roomId, "schema"), schema, JSON.stringify(schema).length);
  }

  async load(roomId: string): Promise<RoomData | null> {
    const stored = (await this.#settledMeta(roomId)).value;
    if (!stored) return null;
    const meta: RoomMeta = {
      documentClock: stored.documentClock,
      tombstoneHistoryStartsAtClock: stored.tombstoneHistoryStartsAtClock,
      schema: stored.schema ??
        (await this.#readKv.get<WireSchema>(this.#key(roomId, "schema"))).value,
    };
    if (stored.w !== undefined) meta.writer = writerOf(stored);
    const fromSnapshot = this.#snapshots ? await this.#loadSnapshot(roomId, meta) : undefined;
    if (fromSnapshot) return fromSnapshot;
    // Listing is not a snapshot: a commit racing with this load may be half visible. The caller
    // catches up from meta.documentClock right after, which re-reads everything changed since.
    // The three ranges are read at once, in the largest batches KV allows (cold joins).
    const [recEntries, chunkEntries, tombEntries] = await Promise.all([
      this.#listAll<Head>(roomId, "rec"),
      this.#listAll<string>(roomId, "chunk"),
      this.#listAll<number>(roomId, "tomb"),
    ]);
    const heads = new Map<string, Head>();
    for (const entry of recEntries) heads.set(String(entry.key.at(-1)), entry.value);
    const pieces = new Map<string, string[]>();
    for (const entry of chunkEntries) {
      const [id, clock, index] = entry.key.slice(-3) as [string, number, number];
      const head = heads.get(id);
      if (!head || head.c !== clock) continue;
      let list = pieces.get(id);
      if (!list) pieces.set(id, list = []);
      list[index] = entry.value;
    }
    const records: StoredRecord[] = [];
    for (const [id, head] of heads) {
      const json = "j" in head ? head.j : joinPieces(pieces.get(id), head.n);
      if (json === undefined) continue; // superseded mid-load; catch-up brings the new value
      records.push(new LazyRecord(id, json, head.c));
    }
    const tombstones = new Map<string, number>();
    for (const entry of tombEntries) {
      if (entry.value >= meta.tombstoneHistoryStartsAtClock) {
        tombstones.set(String(entry.key.at(-1)), entry.value);
      }
    }
    return { meta, records, tombstones };
  }

  async create(roomId: string, data: RoomData): Promise<boolean> {
    const writes = new Writes();
    for (const record of data.records) {
      this.#writeRecord(writes, roomId, record.state, record.lastChangedClock, undefined);
    }
    for (const [id, clock] of data.tombstones) writes.set(this.#key(roomId, "tomb", id), clock, 64);
    const metaKey = this.#key(roomId, "meta");
    if (data.meta.schema) {
      writes.set(
        this.#key(roomId, "schema"),
        data.meta.schema,
        JSON.stringify(data.meta.schema).length,
      );
    }
    if (!writes.fitsWith(1, META_SIZE)) {
      throw new Error(`room ${roomId}: initial data too large for one write`);
    }
    const meta: StoredMeta = {
      documentClock: data.meta.documentClock,
      tombstoneHistoryStartsAtClock: data.meta.tombstoneHistoryStartsAtClock,
    };
    const op = this.#kv.atomic().check({ key: metaKey, versionstamp: null });
    writes.applyTo(op);
    const result = await op.set(metaKey, meta).commit();
    if (result.ok) this.#known.set(roomId, { meta, versionstamp: result.versionstamp });
    return result.ok;
  }

  async commit(roomId: string, expectedClock: number, changes: ChangeSet): Promise<CommitResult> {
    const known = await this.#knownAt(roomId, expectedClock);
    if (!known) return { ok: false, error: CommitError.conflict };
    const clock = expectedClock + 1;
    const { writes, logEntry, logSize } = this.#stepWrites(roomId, clock, changes);
    this.#writeSchema(writes, roomId, changes.schema ?? known.meta.schema);
    const meta = nextMeta(known.meta, clock, changes.writer);
    const metaSize = META_SIZE;
    const metaKey = this.#key(roomId, "meta");
    const versionstamp = known.versionstamp;
    const logKey = this.#logKey(roomId, clock);
    let staged: Pending | undefined;
    const inline = writes.fitsWith(2, metaSize + logSize);
    if (!inline) {
      // Too big for one atomic operation: write the mutations to staging keys first (invisible),
      // then commit the meta pointing at them, then apply them (spec: every ack is durable).
      staged = await this.#stage(roomId, writes, clock);
      meta.pending = staged;
    }
    const result = await this.#write(`room:${roomId}`, {
      checks: 1,
      checked: [{ key: metaKey, versionstamp }],
      mutations: 2 + (inline ? writes.list.length : 0),
      bytes: metaSize + logSize + (inline ? writes.bytes : 0),
    }, (op) => {
      op.check({ key: metaKey, versionstamp });
      op.set(logKey, { f: clock, c: clock, s: [logEntry] } satisfies LogSlot);
      if (inline) writes.applyTo(op);
      op.set(metaKey, meta);
    });
    if (!result.ok) {
      this.#known.delete(roomId);
      if (staged) await this.#deleteStage(roomId, staged);
      return { ok: false, error: CommitError.conflict };
    }
    this.#known.set(roomId, { meta, versionstamp: result.versionstamp });
    if (staged) {
      await this.#rollForward(roomId, {
        key: metaKey,
        value: meta,
        versionstamp: result.versionstamp,
      });
    }
    return { ok: true, clock };
  }

  async commitSteps(
    roomId: string,
    expectedClock: number,
    steps: ChangeSet[],
  ): Promise<CommitResult> {
    if (steps.length === 1) return this.commit(roomId, expectedClock, steps[0]!);
    if (steps.length === 0) {
      const clock = await this.readClock(roomId);
      return clock === expectedClock
        ? { ok: true, clock }
        : { ok: false, error: CommitError.conflict };
    }
    const known = await this.#knownAt(roomId, expectedClock);
    if (!known) return { ok: false, error: CommitError.conflict };
    // Every step's writes, last one per key winning (a record may change in several steps), plus
    // the log entries, several clocks to a slot; one meta write at the end. A group of a few
    // hundred pushes on a few records writes a few dozen keys, not one or two per push.
    const byKey = new Map<string, Mutation>();
    const put = (writes: Writes) => {
      for (const m of writes.list) byKey.set(JSON.stringify(m.key), m);
    };
    let schema = known.meta.schema ?? undefined;
    let clock = expectedClock;
    let slot: LogSlot | undefined;
    let slotSize = 0;
    const logWrites = new Writes();
    const closeSlot = () => {
      if (slot) logWrites.set(this.#logKey(roomId, slot.c), slot, slotSize);
      slot = undefined;
      slotSize = 64;
    };
    for (const changes of steps) {
      clock++;
      const { writes, logEntry, logSize } = this.#stepWrites(roomId, clock, changes);
      if (slot && slotSize + logSize > MAX_LOG_SLOT_BYTES) closeSlot();
      slot ??= { f: clock, c: clock, s: [] };
      slot.c = clock;
      slot.s.push(logEntry);
      slotSize += logSize;
      if (changes.schema) schema = changes.schema;
      put(writes);
    }
    closeSlot();
    put(logWrites);
    const writes = Writes.from([...byKey.values()]);
    this.#writeSchema(writes, roomId, schema);
    const meta = nextMeta(known.meta, clock, steps.findLast((step) => step.writer)?.writer);
    const metaSize = META_SIZE;
    if (!writes.fitsWith(1, metaSize)) return { ok: false, error: CommitError.too_large };
    const metaKey = this.#key(roomId, "meta");
    const versionstamp = known.versionstamp;
    const result = await this.#write(`room:${roomId}`, {
      checks: 1,
      checked: [{ key: metaKey, versionstamp }],
      mutations: 1 + writes.list.length,
      bytes: metaSize + writes.bytes,
    }, (op) => {
      op.check({ key: metaKey, versionstamp });
      writes.applyTo(op);
      op.set(metaKey, meta);
    });
    if (!result.ok) {
      this.#known.delete(roomId);
      return { ok: false, error: CommitError.conflict };
    }
    this.#known.set(roomId, { meta, versionstamp: result.versionstamp });
    return { ok: true, clock };
  }

  /**
   * The cached meta when the room is at `expectedClock` with no staged commit pending (reading it
   * afresh if the cache disagrees); `undefined` on a lost race. A half-applied staged commit is
   * finished first, and the caller catches up.
   */
  async #knownAt(
    roomId: string,
    expectedClock: number,
  ): Promise<{ meta: StoredMeta; versionstamp: string } | undefined> {
    const known = this.#known.get(roomId);
    if (known && known.meta.documentClock === expectedClock && !known.meta.pending) return known;
    const entry = await this.#readMeta(roomId);
    if (entry.value?.pending) {
      await this.#rollForward(roomId, entry);
      return undefined;
    }
    const fresh = this.#known.get(roomId);
    return fresh && fresh.meta.documentClock === expectedClock ? fresh : undefined;
  }

  /**
   * One clock step's record, tombstone and chunk writes, and its change-log entry (with the records'
   * JSON when small enough, so catch-up is one range read). Each record is serialised once.
   */
  #stepWrites(
    roomId: string,
    clock: number,
    changes: ChangeSet,
  ): { writes: Writes; logEntry: LogEntry; logSize: number } {
    const writes = new Writes();
    const values = changes.puts.map((p) => recordJson(p.record));
    changes.puts.forEach(({ record, prev }, i) => {
      this.#writeRecord(writes, roomId, record, clock, prev, values[i]);
      // A record and its tombstone never coexist, so only a created record (no `prev`) can replace
      // one: an update saves a delete (a fifth of a one-shape push's mutations, and their share of
      // the ~20 % of an isolate's CPU that submitting KV writes takes).
      if (!prev) writes.delete(this.#key(roomId, "tomb", record.id));
    });
    for (const { id, prev } of changes.deletes) {
      writes.delete(this.#key(roomId, "rec", id));
      this.#deleteChunks(writes, roomId, prev);
      writes.set(this.#key(roomId, "tomb", id), clock, 64);
    }
    const ids = { p: changes.puts.map((p) => p.record.id), d: changes.deletes.map((d) => d.id) };
    const idsSize = JSON.stringify(ids).length;
    const origin = changes.origin ? { o: changes.origin } : {};
    let logEntry: LogEntry = idsSize > MAX_LOG_ENTRY_CHARS ? { bulk: true, ...origin } : {
      ...ids,
      ...origin,
    };
    let logSize = Math.min(idsSize, MAX_LOG_ENTRY_CHARS) + 64 + (changes.origin?.length ?? 0);
    if (!("bulk" in logEntry) && changes.logValues !== false) {
      const valuesSize = values.reduce((n, v) => n + byteSize(v) + 8, 0);
      if (idsSize + valuesSize <= MAX_LOG_VALUE_BYTES) {
        logEntry = { ...logEntry, j: values };
        logSize += valuesSize;
      }
    }
    return { writes, logEntry, logSize };
  }

  async #stage(roomId: string, writes: Writes, clock: number): Promise<Pending> {
    const stageId = crypto.randomUUID();
    const json = JSON.stringify(writes.list);
    const pieces = await this.#writePieces(
      (i) => this.#key(roomId, "stage", stageId, i),
      json,
      CHUNK_CHARS,
    );
    return { stageId, pieces, clock };
  }

  /**
   * Writes `text` as pieces of `size` characters under `key(i)`, a few per atomic operation
   * (staged commits, snapshots). Returns how many; throws if a write fails.
   */
  async #writePieces(
    key: (index: number) => Deno.KvKey,
    text: string,
    size: number,
  ): Promise<number> {
    const count = Math.max(1, Math.ceil(text.length / size));
    for (let first = 0; first < count; first += STAGE_PIECES_PER_OP) {
      const op = this.#kv.atomic();
      for (let i = first; i < Math.min(count, first + STAGE_PIECES_PER_OP); i++) {
        op.set(key(i), text.slice(i * size, (i + 1) * size));
      }
      if (!(await op.commit()).ok) throw new Error("piece write failed");
    }
    return count;
  }

  /** Deletes the pieces `key(0)` … `key(count - 1)`. */
  async #deletePieces(key: (index: number) => Deno.KvKey, count: number): Promise<void> {
    for (let first = 0; first < count; first += MAX_MUTATIONS) {
      const op = this.#kv.atomic();
      for (let i = first; i < Math.min(count, first + MAX_MUTATIONS); i++) op.delete(key(i));
      await op.commit();
    }
  }

  /**
   * Applies a staged commit and clears it from the meta. Safe to run from several isolates at once:
   * every batch checks that the meta still points at this stage, so once one runner finished (and a
   * later commit may have changed records) no stale batch can land.
   */
  async #rollForward(roomId: string, entry: Deno.KvEntryMaybe<StoredMeta>): Promise<void> {
    const pending = entry.value?.pending;
    if (!pending || !entry.versionstamp) return;
    const check = { key: entry.key, versionstamp: entry.versionstamp };
    const pieces: string[] = [];
    for await (
      const piece of this.#readKv.list<string>({
        prefix: this.#key(roomId, "stage", pending.stageId),
      })
    ) pieces[piece.key.at(-1) as number] = piece.value;
    const json = joinPieces(pieces, pending.pieces);
    if (json === undefined) return; // another runner finished and deleted the stage
    const writes = Writes.from(JSON.parse(json));
    for (const batch of writes.batches()) {
      const op = this.#kv.atomic().check(check);
      batch.applyTo(op);
      if (!(await op.commit()).ok) return;
    }
    const meta: StoredMeta = { ...entry.value!, pending: undefined };
    delete meta.pending;
    const done = await this.#kv.atomic().check(check).set(entry.key, meta).commit();
    if (done.ok) {
      this.#known.set(roomId, { meta, versionstamp: done.versionstamp });
      await this.#deleteStage(roomId, pending);
    }
  }

  #deleteStage(roomId: string, pending: Pending): Promise<void> {
    return this.#deletePieces(
      (i) => this.#key(roomId, "stage", pending.stageId, i),
      pending.pieces,
    );
  }

  #writeRecord(
    writes: Writes,
    roomId: string,
    record: WireRecord,
    clock: number,
    prev: StoredRecord | undefined,
    json = recordJson(record),
  ): void {
    if (json.length <= CHUNK_CHARS) {
      writes.set(this.#key(roomId, "rec", record.id), { c: clock, j: json }, byteSize(json) + 64);
    } else {
      const count = Math.ceil(json.length / CHUNK_CHARS);
      for (let i = 0; i < count; i++) {
        const piece = json.slice(i * CHUNK_CHARS, (i + 1) * CHUNK_CHARS);
        writes.set(this.#key(roomId, "chunk", record.id, clock, i), piece, byteSize(piece) + 64);
      }
      writes.set(this.#key(roomId, "rec", record.id), { c: clock, n: count }, 64);
    }
    if (prev && prev.lastChangedClock !== clock) this.#deleteChunks(writes, roomId, prev);
  }

  #deleteChunks(writes: Writes, roomId: string, prev: StoredRecord): void {
    // The engine's cached records carry their JSON length: no need to serialize them again.
    const chars = (prev as { chars?: unknown }).chars;
    const length = typeof chars === "number" ? chars : JSON.stringify(prev.state).length;
    if (length <= CHUNK_CHARS) return;
    const count = Math.ceil(length / CHUNK_CHARS);
    for (let i = 0; i < count; i++) {
      writes.delete(this.#key(roomId, "chunk", storedRecordId(prev), prev.lastChangedClock, i));
    }
  }

  /**
   * The room at `meta`'s clock from its compacted snapshot and the change log after it, or
   * `undefined` when there is no snapshot or the log no longer reaches back to it (then the caller
   * lists every record). Like a listing, the result may lag commits landing meanwhile: the room
   * catches up from its clock right after loading.
   */
  async #loadSnapshot(roomId: string, meta: RoomMeta): Promise<RoomData | undefined> {
    const head = (await this.#readKv.get<SnapshotHead>(this.#key(roomId, "snap"))).value;
    if (
      !head || head.clock > meta.documentClock ||
      head.clock < meta.tombstoneHistoryStartsAtClock ||
      meta.documentClock - head.clock >= this.#logSize
    ) return undefined;
    const [pieces, tombEntries, changes] = await Promise.all([
      this.#listAll<string>(roomId, "snapchunk", head.id),
      this.#listAll<number>(roomId, "tomb"),
      this.changesSince(roomId, head.clock),
    ]);
    if (changes.kind === "gap" || pieces.length !== head.pieces) return undefined;
    const byId = new Map<string, StoredRecord>();
    for (const line of pieces.map((entry) => entry.value).join("").split("\n")) {
      const record = parseSnapshotLine(line);
      if (record) byId.set(storedRecordId(record), record);
    }
    let startsAt = meta.tombstoneHistoryStartsAtClock;
    if (changes.kind === "changes") {
      for (const record of changes.records) byId.set(record.state.id, record);
      for (const [id] of changes.deletes) byId.delete(id);
      startsAt = changes.tombstoneHistoryStartsAtClock;
    }
    const tombstones = new Map<string, number>();
    for (const entry of tombEntries) {
      if (entry.value >= startsAt) tombstones.set(String(entry.key.at(-1)), entry.value);
    }
    return {
      meta: { ...meta, documentClock: changes.clock, tombstoneHistoryStartsAtClock: startsAt },
      records: [...byId.values()],
      tombstones,
    };
  }

  /**
   * Stores `records` (the whole document at `clock`) as the room's compacted snapshot, unless one
   * at `clock` or later exists. The pieces are written first under a new id, then the `snap` key is
   * switched to them (checked against a concurrent writer), then the old pieces are deleted; a
   * crash in between leaves unreferenced pieces until the room is deleted. Returns whether this
   * snapshot became the room's.
   */
  async saveSnapshot(
    roomId: string,
    clock: number,
    records: readonly StoredRecord[],
  ): Promise<boolean> {
    const headKey = this.#key(roomId, "snap");
    const current = await this.#kv.get<SnapshotHead>(headKey);
    if (current.value && current.value.clock >= clock) return false;
    const lines: string[] = [];
    for (const record of records) {
      const id = JSON.stringify(storedRecordId(record));
      lines.push(`${record.lastChangedClock}\t${id}\t${storedRecordJson(record)}\n`);
    }
    const text = lines.join("");
    // Pieces of at most ~60 KB stored (KV: 64 KiB a value), as in staging.
    const size = /[\u0100-\uffff]/.test(text) ? CHUNK_CHARS : 2 * CHUNK_CHARS;
    const id = crypto.randomUUID();
    const count = await this.#writePieces((i) => this.#key(roomId, "snapchunk", id, i), text, size);
    const head: SnapshotHead = { id, clock, pieces: count };
    const switched = await this.#kv.atomic().check(current).set(headKey, head).commit();
    await this.#deleteSnapshotPieces(roomId, switched.ok ? current.value : head);
    return switched.ok;
  }

  async #deleteSnapshotPieces(roomId: string, head: SnapshotHead | null): Promise<void> {
    if (head) {
      await this.#deletePieces((i) => this.#key(roomId, "snapchunk", head.id, i), head.pieces);
    }
  }

  async readClock(roomId: string): Promise<number> {
    return (await this.#readMeta(roomId)).value?.documentClock ?? -1;
  }

  async changesSince(roomId: string, since: number): Promise<ChangesSince> {
    const meta = (await this.#settledMeta(roomId)).value;
    if (!meta) return { kind: "gap", clock: -1 };
    const clock = meta.documentClock;
    if (since === clock) return { kind: "none", clock };
    if (since > clock || since < meta.tombstoneHistoryStartsAtClock) return { kind: "gap", clock };
    const touched = new Set<string>();
    const log = await this.#readLog(roomId, since, clock);
    if (!log) return { kind: "gap", clock };
    for (const entry of log) {
      for (const id of entry.p) touched.add(id);
      for (const id of entry.d) touched.add(id);
    }
    const records: StoredRecord[] = [];
    const deletes: [string, number][] = [];
    for (const { id, head, tombstone } of await this.#readHeads(roomId, [...touched])) {
      if (head) {
        const json = "j" in head ? head.j : await this.#readPieces(roomId, id, head);
        if (json === undefined) return { kind: "gap", clock }; // superseded while reading
        const state = JSON.parse(json);
        rememberRecordJson(state, json);
        records.push({ state, lastChangedClock: head.c, chars: json.length });
      } else if (tombstone !== null) {
        deletes.push([id, tombstone]);
      }
    }
    return {
      kind: "changes",
      clock,
      tombstoneHistoryStartsAtClock: meta.tombstoneHistoryStartsAtClock,
      records,
      deletes,
    };
  }

  /** The change-log slot of `clock`. */
  #logKey(roomId: string, clock: number): Deno.KvKey {
    return this.#key(roomId, "ring", clock % this.#logSize);
  }

  /**
   * The log entries of the clocks `(since, clock]`, in order, or `undefined` when one of them is no
   * longer there (its slot holds a later clock), was never written with ids (bulk), or the range is
   * longer than the ring. One or two range reads (the ring may wrap inside it).
   */
  async #readLog(
    roomId: string,
    since: number,
    clock: number,
  ): Promise<(IdsEntry & { c: number })[] | undefined> {
    const size = this.#logSize;
    if (clock - since > size) return undefined;
    const first = (since + 1) % size;
    const last = clock % size;
    const ranges = first <= last ? [[first, last + 1]] : [[first, size], [0, last + 1]];
    const entries: (IdsEntry & { c: number })[] = [];
    let expected = since + 1;
    for (const [start, end] of ranges) {
      const iter = this.#readKv.list<LogSlot>({
        start: this.#key(roomId, "ring", start!),
        end: this.#key(roomId, "ring", end!),
      });
      for await (const { key, value } of iter) {
        // The clock of the range this slot stands for: its entries are ours only if they end there.
        const slotClock = since + 1 + ((Number(key.at(-1)) - first + size) % size);
        if (value.c !== slotClock) continue;
        if (value.f > expected) return undefined;
        for (let at = expected; at <= value.c; at++) {
          const entry = value.s[at - value.f];
          if (!entry || "bulk" in entry) return undefined;
          entries.push({ ...entry, c: at });
        }
        expected = value.c + 1;
      }
    }
    return expected === clock + 1 ? entries : undefined;
  }

  /** The record head and tombstone of each id, read together (KV reads 10 keys at a time). */
  async #readHeads(
    roomId: string,
    ids: string[],
  ): Promise<{ id: string; head: Head | null; tombstone: number | null }[]> {
    const out: { id: string; head: Head | null; tombstone: number | null }[] = [];
    for (let i = 0; i < ids.length; i += GET_MANY_LIMIT / 2) {
      const batch = ids.slice(i, i + GET_MANY_LIMIT / 2);
      const keys = batch.flatMap((id) => [
        this.#key(roomId, "rec", id),
        this.#key(roomId, "tomb", id),
      ]);
      const entries = await this.#readKv.getMany<(Head | number)[]>(keys);
      batch.forEach((id, j) =>
        out.push({
          id,
          head: (entries[2 * j]?.value ?? null) as Head | null,
          tombstone: (entries[2 * j + 1]?.value ?? null) as number | null,
        })
      );
    }
    return out;
  }

  async stepsSince(roomId: string, since: number): Promise<StepsSince> {
    const meta = (await this.#settledMeta(roomId)).value;
    if (!meta) return { kind: "gap", clock: -1 };
    const clock = meta.documentClock;
    if (since === clock) return { kind: "none", clock };
    if (since > clock || since < meta.tombstoneHistoryStartsAtClock) return { kind: "gap", clock };
    const steps: LogStep[] = [];
    // Steps logged without values: their records are read below.
    const unresolved: { step: LogStep; ids: string[] }[] = [];
    const log = await this.#readLog(roomId, since, clock);
    if (!log) return { kind: "gap", clock };
    for (const { c, p, d, j, o } of log) {
      const step: LogStep = { clock: c, puts: [], deletes: [...d] };
      if (o !== undefined) step.origin = o;
      if (j && j.length === p.length) {
        step.puts = j.map((json) => ({ state: JSON.parse(json), lastChangedClock: c }));
      } else {
        unresolved.push({ step, ids: [...p, ...d] });
        step.deletes = [];
      }
      steps.push(step);
    }
    for (const { step, ids } of unresolved) {
      for (const { id, head, tombstone } of await this.#readHeads(roomId, ids)) {
        // Only what is still as that clock left it; later changes come with their own step.
        if (head && head.c === step.clock) {
          const json = "j" in head ? head.j : await this.#readPieces(roomId, id, head);
          if (json === undefined) return { kind: "gap", clock }; // superseded while reading
          step.puts.push({ state: JSON.parse(json), lastChangedClock: head.c });
        } else if (!head && tombstone === step.clock) {
          step.deletes.push(id);
        }
      }
    }
    return {
      kind: "steps",
      clock,
      tombstoneHistoryStartsAtClock: meta.tombstoneHistoryStartsAtClock,
      steps,
      ...(meta.w !== undefined ? { writer: writerOf(meta) } : {}),
    };
  }

  async #readPieces(
    roomId: string,
    id: string,
    head: { c: number; n: number },
  ): Promise<string | undefined> {
    const pieces: string[] = [];
    const prefix = this.#key(roomId, "chunk", id, head.c);
    for await (const entry of this.#readKv.list<string>({ prefix })) {
      pieces[entry.key.at(-1) as number] = entry.value;
    }
    return joinPieces(pieces, head.n);
  }

  async pruneTombstones(roomId: string, expectedClock: number, startsAt: number): Promise<boolean> {
    const entry = await this.#settledMeta(roomId);
    if (!entry.value || entry.value.documentClock !== expectedClock) return false;
    const meta = { ...entry.value, tombstoneHistoryStartsAtClock: startsAt };
    const result = await this.#kv.atomic()
      .check(entry)
      .set(this.#key(roomId, "meta"), meta)
      .commit();
    if (!result.ok) return false;
    this.#known.set(roomId, { meta, versionstamp: result.versionstamp });
    // Below the new cutoff tombstones are ignored by every reader, so deleting them in several
    // operations is safe.
    let op = this.#kv.atomic();
    let count = 0;
    for await (const t of this.#readKv.list<number>({ prefix: this.#key(roomId, "tomb") })) {
      if (t.value >= startsAt) continue;
      op.delete(t.key);
      if (++count === MAX_MUTATIONS) {
        await op.commit();
        op = this.#kv.atomic();
        count = 0;
      }
    }
    if (count > 0) await op.commit();
    return true;
  }

  async putSession(roomId: string, entry: SessionEntry, ttlMs: number): Promise<void> {
    const key = this.#key(roomId, "sess", entry.sessionId);
    const bytes = 300 + (entry.presence ? JSON.stringify(entry.presence).length * 2 : 0);
    const result = await this.#write(
      `sess:${roomId}:${entry.sessionId}`,
      { checks: 0, checked: [], mutations: 1, bytes },
      (op) => op.set(key, entry, { expireIn: ttlMs }),
    );
    if (!result.ok) throw new Error("session entry write failed");
  }

  async deleteSession(roomId: string, sessionId: string): Promise<void> {
    const key = this.#key(roomId, "sess", sessionId);
    const result = await this.#write(
      `sess:${roomId}:${sessionId}`,
      { checks: 0, checked: [], mutations: 1, bytes: 200 },
      (op) => op.delete(key),
    );
    if (!result.ok) throw new Error("session entry delete failed");
  }

  async listSessions(roomId: string): Promise<SessionEntry[]> {
    const now = Date.now();
    const sessions: SessionEntry[] = [];
    for await (const e of this.#readKv.list<SessionEntry>({ prefix: this.#key(roomId, "sess") })) {
      // expireIn deletes lazily; the stored deadline is authoritative.
      if (e.value.expiresAt > now) sessions.push(e.value);
    }
    return sessions;
  }

  async deleteRoom(roomId: string): Promise<void> {
    // The meta key first: a commit racing the delete then fails its versionstamp check.
    await this.#kv.delete(this.#key(roomId, "meta"));
    let batch: Deno.KvKey[] = [];
    const flush = async () => {
      const op = this.#kv.atomic();
      for (const key of batch) op.delete(key);
      await op.commit();
      batch = [];
    };
    // Several passes: a list iterator is not a snapshot of keys written while it runs.
    for (let pass = 0; pass < 3; pass++) {
      let found = false;
      for await (const entry of this.#readKv.list({ prefix: this.#key(roomId) })) {
        found = true;
        batch.push(entry.key);
        if (batch.length >= 500) await flush();
      }
      if (batch.length > 0) await flush();
      if (!found) return;
    }
  }
}

/** One KV mutation: a set (with its approximate size) or, without `value`, a delete. */
interface Mutation {
  key: Deno.KvKey;
  value?: unknown;
  size: number;
}

/** Mutations of a commit, counted against the limits of one atomic operation. */
class Writes {
  readonly list: Mutation[] = [];
  bytes = 0;

  static from(list: Mutation[]): Writes {
    const writes = new Writes();
    for (const m of list) writes.#add(m);
    return writes;
  }

  set(key: Deno.KvKey, value: unknown, size: number): void {
    this.#add({ key, value, size });
  }

  delete(key: Deno.KvKey): void {
    this.#add({ key, size: 0 });
  }

  #add(mutation: Mutation): void {
    this.list.push(mutation);
    this.bytes += mutation.size + keySize(mutation.key);
  }

  /** Whether these plus `extraMutations` totalling `extraBytes` fit one atomic operation. */
  fitsWith(extraMutations: number, extraBytes: number): boolean {
    return this.list.length + extraMutations <= MAX_MUTATIONS &&
      this.bytes + extraBytes <= MAX_ATOMIC_BYTES;
  }

  applyTo(op: Deno.AtomicOperation): void {
    for (const m of this.list) {
      if ("value" in m) op.set(m.key, m.value);
      else op.delete(m.key);
    }
  }

  /** Splits into groups that each fit one atomic operation (with room for a check). */
  *batches(): Generator<Writes> {
    let batch = new Writes();
    for (const m of this.list) {
      if (batch.list.length > 0 && !batch.fitsWith(1, m.size + keySize(m.key))) {
        yield batch;
        batch = new Writes();
      }
      batch.#add(m);
    }
    if (batch.list.length > 0) yield batch;
  }
}

function keySize(key: Deno.KvKey): number {
  let size = 0;
  for (const part of key) size += typeof part === "string" ? byteSize(part) + 2 : 10;
  return size;
}

/** Upper bound of a string's stored size: V8 keeps non-Latin-1 strings as UTF-16. */
function byteSize(text: string): number {
  // deno-lint-ignore no-control-regex
  return /[^\u0000-\u00ff]/.test(text) ? text.length * 2 : text.length;
}

/** The meta of clock `clock` after `known`, naming `writer` (else keeping the one it names). */
function nextMeta(known: StoredMeta, clock: number, writer: string | undefined): StoredMeta {
  const meta: StoredMeta = {
    documentClock: clock,
    tombstoneHistoryStartsAtClock: known.tombstoneHistoryStartsAtClock,
  };
  if (writer) {
    meta.w = writer;
    meta.at = Date.now();
  } else if (known.w !== undefined && known.at !== undefined) {
    meta.w = known.w;
    meta.at = known.at;
  }
  return meta;
}

function writerOf(meta: StoredMeta): RoomMeta["writer"] {
  return meta.w !== undefined && meta.at !== undefined
    ? { isolateId: meta.w, at: meta.at }
    : undefined;
}

/**
 * One line of a snapshot piece: `clock<TAB>"id"<TAB>json` (the id as a JSON string, so the record
 * stays unparsed until used), or `clock<TAB>json` as snapshots stored before ids were written.
 */
function parseSnapshotLine(line: string): StoredRecord | undefined {
  if (line === "") return undefined;
  const tab = line.indexOf("\t");
  const clock = Number(line.slice(0, tab));
  if (line.charCodeAt(tab + 1) === 0x22 /* " */) {
    const idEnd = line.indexOf("\t", tab + 1);
    const id = JSON.parse(line.slice(tab + 1, idEnd)) as string;
    return new LazyRecord(id, line.slice(idEnd + 1), clock);
  }
  const json = line.slice(tab + 1);
  const state = JSON.parse(json) as WireRecord;
  rememberRecordJson(state, json);
  return { state, lastChangedClock: clock, chars: json.length };
}

function joinPieces(pieces: string[] | undefined, count: number): string | undefined {
  if (!pieces || pieces.length !== count) return undefined;
  for (let i = 0; i < count; i++) if (pieces[i] === undefined) return undefined;
  return pieces.join("");
}

/**
 * A {@link RoomStore} on Deno KV, the source of truth for rooms across isolates.
 *
 * Keys (all under `["tldraw", roomId]`):
 *
 * | key | value | module |
 * |---|---|---|
 * | `meta` | `{documentClock, tombstoneHistoryStartsAtClock, w, at}` (`w`, `at`: the writer); its versionstamp orders commits | here |
 * | `schema` | the serialized schema the records conform to (written only when it changes) | here |
 * | `rec, id` / `chunk, id, c, i` / `tomb, id` | records, their pieces, tombstones | kv_records.ts |
 * | `ring, clock % logSize` | the change log | kv_log_ring.ts |
 * | `stage, stageId, i` | a commit too big for one atomic operation, until applied | kv_staged_commit.ts |
 * | `snap` / `snapchunk, id, i` | the newest compacted snapshot | kv_snapshot.ts |
 * | `sess, sessionId` | a {@link SessionEntry}, with `expireIn` | kv_sessions.ts |
 * | `lease` / `pipe, id, n` | with a remote KV: what pipelined commits check (markers expire) | kv_pipeline.ts |
 *
 * A commit is one `kv.atomic()` that checks the meta versionstamp, so a lost race is detected rather
 * than overwritten. How much of a group goes into one operation is decided here, from the sizes
 * counted in kv_writes.ts: the longest prefix of the steps that fits.
 *
 * @module
 */
import { KvBatcher } from "./kv_batcher.ts";
import { logEntryOf, LogRing, type LogSlot } from "./kv_log_ring.ts";
import {
  firstMarkers,
  newPipelineId,
  PIPE_KEY_SIZE,
  PIPE_KEY_TTL_MS,
  pipelinedWrite,
  type PipelineKeys,
  type PreparedStep,
  RoomPipeline,
} from "./kv_pipeline.ts";
import { KvRecords } from "./kv_records.ts";
import { KvSessions, type WriteFn } from "./kv_sessions.ts";
import { KvSnapshots } from "./kv_snapshot.ts";
import { type Pending, StagedCommits } from "./kv_staged_commit.ts";
import { type KvContext, MAX_MUTATIONS, MergedWrites, Writes } from "./kv_writes.ts";
import type { WireSchema } from "./protocol.ts";
import {
  type ChangeSet,
  CommitError,
  type CommitResult,
  type LogStep,
  type RoomData,
  type RoomMeta,
  type RoomStore,
  RoomStoreError,
  type SessionEntry,
  type StepsSince,
  type StoredRecord,
  StoreFailure,
} from "./room_store.ts";

// Bytes of a meta value (two clocks, maybe a staged-commit pointer), with a margin.
const META_SIZE = 300;

/**
 * The meta as stored. The schema has its own key: kept in the meta (as rooms written before did, and
 * which is still read) it was ~2 KB of every commit. A legacy inline schema moves to its key with
 * the room's next commit.
 */
type StoredMeta = Omit<RoomMeta, "schema" | "writer"> & {
  schema?: RoomMeta["schema"];
  pending?: Pending;
  /** The newest change-log entries, up to the meta's clock, when not in the ring (kv_log_ring.ts). */
  t?: LogSlot;
  /** The writer's isolate id and commit time (RoomMeta.writer). */
  w?: string;
  at?: number;
};

type KnownMeta = { meta: StoredMeta; versionstamp: string };

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
  /** Atomic operations in flight at once (see `BatchLimits.inFlight`; default 2). */
  commitsInFlight?: number;
  /**
   * Milliseconds a commit may wait for other rooms' commits to join its operation while they
   * arrive more often than that (see `BatchLimits.linger`; default 0).
   */
  commitLingerMs?: number;
  /** The KV is a network away (see {@link DocumentStore.remote}). Default `false`. */
  remote?: boolean;
  /**
   * Keep the newest change-log entries in the room's meta until they outgrow it (kv_log_ring.ts):
   * fewer pages written per commit on a local file. Default: unless `remote`.
   */
  logTail?: boolean;
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

/** A {@link RoomStore} on Deno KV. */
export class KvRoomStore implements RoomStore {
  readonly #kv: Deno.Kv;
  readonly #ctx: KvContext;
  readonly #prefix: Deno.KvKey;
  readonly #batcher: KvBatcher | undefined;
  readonly remote: boolean;
  readonly #logTail: boolean;
  #readKv: Deno.Kv;
  readonly #openingReader: Promise<Deno.Kv | undefined> | undefined;
  /** Last meta this isolate saw per room, to skip a read before committing. */
  readonly #known = new Map<string, KnownMeta>();
  readonly #records: KvRecords;
  readonly #log: LogRing;
  readonly #staged: StagedCommits;
  readonly #snapshots: KvSnapshots | undefined;
  readonly #sessions: KvSessions;
  /** Rooms whose commits this isolate pipelines (remote KV only). */
  readonly #pipes = new Map<string, RoomPipeline<StoredMeta>>();

  constructor(kv: Deno.Kv, options: KvRoomStoreOptions = {}) {
    this.#kv = kv;
    this.#prefix = options.prefix ?? ["tldraw"];
    this.remote = options.remote ?? false;
    // On a remote KV pages cost nothing, and pipelined commits (which write the ring) follow.
    this.#logTail = options.logTail ?? !this.remote;
    this.#batcher = options.groupCommit === false ? undefined : new KvBatcher(kv, {
      ...(options.commitsInFlight ? { inFlight: options.commitsInFlight } : {}),
      ...(options.commitLingerMs ? { linger: options.commitLingerMs } : {}),
    });
    this.#readKv = kv;
    this.#openingReader = options.readKv
      ? Promise.resolve(options.readKv).then((readKv) => this.#readKv = readKv, () => undefined)
      : undefined;
    this.#ctx = {
      kv,
      reader: () => this.#readKv,
      key: (roomId, ...parts) => [...this.#prefix, roomId, ...parts],
    };
    this.#records = new KvRecords(this.#ctx);
    this.#log = new LogRing(this.#ctx, options.logSize ?? 1000);
    this.#staged = new StagedCommits(this.#ctx);
    this.#snapshots = options.snapshots === false
      ? undefined
      : new KvSnapshots(this.#ctx, this.#records, this.#log);
    this.#sessions = new KvSessions(
      this.#ctx,
      (group, size, apply) => this.#write(group, size, apply),
    );
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
  #write: WriteFn = (group, size, apply) => {
    if (this.#batcher) return this.#batcher.commit({ group, ...size, apply });
    const op = this.#kv.atomic();
    apply(op);
    return op.commit();
  };

  /** See {@link RoomStore.writeSlot}. */
  writeSlot(): Promise<void> | undefined {
    return this.#batcher?.writeSlot();
  }

  #pipelineKeys(roomId: string, id: string): PipelineKeys {
    return {
      lease: this.#key(roomId, "lease"),
      marker: (n) => this.#key(roomId, "pipe", id, n),
    };
  }

  #key(roomId: string, ...parts: Deno.KvKeyPart[]): Deno.KvKey {
    return this.#ctx.key(roomId, ...parts);
  }

  #remember(roomId: string, known: KnownMeta | undefined): void {
    if (known) this.#known.set(roomId, known);
    else this.#known.delete(roomId);
  }

  async #readMeta(roomId: string): Promise<Deno.KvEntryMaybe<StoredMeta>> {
    const entry = await this.#readKv.get<StoredMeta>(this.#key(roomId, "meta"));
    this.#remember(
      roomId,
      entry.value && entry.versionstamp
        ? { meta: entry.value, versionstamp: entry.versionstamp }
        : undefined,
    );
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

  async #rollForward(roomId: string, entry: Deno.KvEntryMaybe<StoredMeta>): Promise<void> {
    const done = await this.#staged.rollForward(roomId, entry);
    if (done) this.#remember(roomId, done);
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
    const fromSnapshot = await this.#snapshots?.load(roomId, meta, stored.t);
    if (fromSnapshot) return fromSnapshot;
    // The caller catches up from meta.documentClock right after: a listing is not a snapshot.
    const listed = await this.#records.list(roomId, meta.tombstoneHistoryStartsAtClock);
    return { meta, ...listed };
  }

  async create(roomId: string, data: RoomData): Promise<boolean> {
    const writes = new Writes();
    for (const record of data.records) {
      this.#records.write(writes, roomId, record.state, record.lastChangedClock, undefined);
    }
    for (const [id, clock] of data.tombstones) writes.set(this.#key(roomId, "tomb", id), clock, 64);
    this.#writeSchema(writes, roomId, data.meta.schema);
    if (!writes.fitsWith(1, META_SIZE)) {
      throw new RoomStoreError(StoreFailure.too_large, `room ${roomId}: initial data too large`);
    }
    const meta: StoredMeta = {
      documentClock: data.meta.documentClock,
      tombstoneHistoryStartsAtClock: data.meta.tombstoneHistoryStartsAtClock,
    };
    const metaKey = this.#key(roomId, "meta");
    const op = this.#kv.atomic().check({ key: metaKey, versionstamp: null });
    writes.applyTo(op);
    const result = await op.set(metaKey, meta).commit();
    if (result.ok) this.#remember(roomId, { meta, versionstamp: result.versionstamp });
    return result.ok;
  }

  async commitSteps(
    roomId: string,
    expectedClock: number,
    steps: ChangeSet[],
  ): Promise<CommitResult> {
    if (steps.length === 0) {
      const clock = await this.readClock(roomId);
      return clock === expectedClock
        ? { ok: true, clock }
        : { ok: false, error: CommitError.conflict };
    }
    const known = await this.#knownAt(roomId, expectedClock);
    if (!known) return { ok: false, error: CommitError.conflict };
    const planned = this.#planWrite(roomId, expectedClock, steps, known.meta);
    const clock = expectedClock + planned.steps;
    let staged: Pending | undefined;
    if (planned.staged) {
      // The first step alone is too big for one atomic operation: its mutations go to staging
      // keys first (invisible), then the meta is committed pointing at them, then they are applied
      // (every acknowledged push is durable once the meta is).
      staged = await this.#staged.stage(roomId, planned.writes, clock);
    }
    const meta = nextMeta(
      known.meta,
      clock,
      steps.slice(0, planned.steps).findLast((s) => s.writer)?.writer,
    );
    if (staged) meta.pending = staged;
    if (planned.tail) meta.t = planned.tail;
    const metaKey = this.#key(roomId, "meta");
    const versionstamp = known.versionstamp;
    const inline = staged ? planned.log : planned.writes;
    // Whatever this isolate pipelined before is over: this commit fences it, and on a remote KV
    // creates the first markers of the pipeline that may follow it (kv_pipeline.ts).
    this.#pipes.delete(roomId);
    const pipeline = this.remote && !staged ? newPipelineId() : undefined;
    const keys = pipeline === undefined ? undefined : this.#pipelineKeys(roomId, pipeline);
    const markers = keys ? firstMarkers() : [];
    const pipeKeys = this.remote ? 1 + markers.length : 0;
    const result = await this.#write(`room:${roomId}`, {
      checks: 1,
      checked: [{ key: metaKey, versionstamp }],
      mutations: 1 + pipeKeys + inline.list.length,
      bytes: META_SIZE + pipeKeys * PIPE_KEY_SIZE + inline.bytes,
    }, (op) => {
      op.check({ key: metaKey, versionstamp });
      inline.applyTo(op);
      op.set(metaKey, meta);
      if (this.remote) op.set(this.#key(roomId, "lease"), clock);
      for (const n of markers) op.set(keys!.marker(n), 1, { expireIn: PIPE_KEY_TTL_MS });
    });
    if (!result.ok) {
      this.#known.delete(roomId);
      if (staged) await this.#staged.discard(roomId, staged);
      return { ok: false, error: CommitError.conflict };
    }
    const committed = { meta, versionstamp: result.versionstamp };
    this.#remember(roomId, committed);
    if (staged) await this.#rollForward(roomId, { key: metaKey, value: meta, ...committed });
    else if (pipeline !== undefined) {
      this.#pipes.set(roomId, new RoomPipeline(pipeline, result.versionstamp, clock, meta));
    }
    return { ok: true, clock };
  }

  /** See {@link DocumentStore.pipelineSteps} and kv_pipeline.ts. */
  pipelineSteps(
    roomId: string,
    expectedClock: number,
    steps: ChangeSet[],
  ): Promise<CommitResult> | undefined {
    const pipe = this.#pipes.get(roomId);
    if (!pipe || steps.length === 0 || !pipe.accepts(expectedClock)) return undefined;
    if (steps.some((changes) => changes.schema)) return undefined;
    const own: PreparedStep[] = steps.map((changes, i) => {
      const clock = expectedClock + i + 1;
      return { clock, ...this.#stepWrites(roomId, clock, changes) };
    });
    const endClock = expectedClock + steps.length;
    const writer = steps.findLast((s) => s.writer)?.writer;
    const commit = pipe.next(own, nextMeta(pipe.landed.meta, endClock, writer));
    const write = pipelinedWrite(
      this.#pipelineKeys(roomId, pipe.id),
      this.#log.slots(roomId),
      pipe.lease,
      commit,
      this.#key(roomId, "meta"),
      META_SIZE,
    );
    if (!write) return undefined; // too big for one write: the caller waits and commits normally
    const group = `room:${roomId}:${commit.n}`;
    const settled = pipe.issue(commit, async () => {
      const result = await this.#write(
        group,
        { ...write, sequence: `room:${roomId}` },
        write.apply,
      );
      return result.ok ? result.versionstamp : null;
    });
    const remember = () => {
      if (this.#pipes.get(roomId) !== pipe) return;
      this.#remember(roomId, pipe.landed);
      if (pipe.over) this.#pipes.delete(roomId);
    };
    settled.then(remember, remember);
    return settled;
  }

  /**
   * The writes of the longest prefix of `steps` that fits one atomic operation with the meta:
   * every step's record writes (the last one per key winning: a record may change in several
   * steps), their log entries (several clocks to a slot) and the schema. When not even the first
   * step fits, that step alone, `staged`: `writes` then goes to staging and `log` is written with
   * the meta.
   */
  #planWrite(
    roomId: string,
    expectedClock: number,
    steps: readonly ChangeSet[],
    known: StoredMeta,
  ): { steps: number; writes: Writes; log: Writes; staged: boolean; tail?: LogSlot } {
    const merged = new MergedWrites();
    // The meta's tail goes on with this commit's entries: in the meta again, or to the ring.
    const tail = known.t?.c === expectedClock ? known.t : undefined;
    const slots = this.#log.slots(roomId, tail);
    let schema = known.schema ?? undefined;
    let schemaBytes = schema ? JSON.stringify(schema).length + 20 : 0;
    let taken = 0;
    for (const changes of steps) {
      const clock = expectedClock + taken + 1;
      const { writes, entry, size } = this.#stepWrites(roomId, clock, changes);
      const log = slots.costWith(size);
      const nextSchemaBytes = changes.schema
        ? JSON.stringify(changes.schema).length + 20
        : schemaBytes;
      const extraMutations = 1 + log.mutations + (nextSchemaBytes > 0 ? 1 : 0);
      const extraBytes = META_SIZE + log.bytes + nextSchemaBytes;
      if (!merged.tryMerge(writes, extraMutations, extraBytes)) {
        if (taken > 0) break;
        // Not even the first step fits: it is committed alone, staged.
        slots.add(clock, entry, size);
        this.#writeSchema(writes, roomId, changes.schema ?? schema);
        return { steps: 1, writes, log: slots.writes(), staged: true };
      }
      slots.add(clock, entry, size);
      if (changes.schema) schema = changes.schema;
      schemaBytes = nextSchemaBytes;
      taken++;
    }
    const writes = merged.toWrites();
    const keepTail = this.#logTail && !this.remote;
    for (const m of slots.writes(keepTail).list) writes.add(m);
    this.#writeSchema(writes, roomId, schema);
    const kept = keepTail ? slots.tail() : undefined;
    return {
      steps: taken,
      writes,
      log: new Writes(),
      staged: false,
      ...(kept ? { tail: kept } : {}),
    };
  }

  /**
   * The cached meta when the room is at `expectedClock` with no staged commit pending (reading it
   * afresh if the cache disagrees); `undefined` on a lost race. A half-applied staged commit is
   * finished first, and the caller catches up.
   */
  async #knownAt(roomId: string, expectedClock: number): Promise<KnownMeta | undefined> {
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
   * One clock step's record, tombstone and chunk writes, and its change-log entry (the ids it
   * changed). Each record is serialised once.
   */
  #stepWrites(
    roomId: string,
    clock: number,
    changes: ChangeSet,
  ): { writes: Writes; entry: ReturnType<typeof logEntryOf>["entry"]; size: number } {
    const writes = new Writes();
    changes.puts.forEach(({ record, prev, noTombstone }) => {
      this.#records.write(writes, roomId, record, clock, prev);
      // A record and its tombstone never coexist, so only a created record (no `prev`) can replace
      // one: an update saves a delete (a fifth of a one-shape push's mutations, and their share of
      // the ~20 % of an isolate's CPU that submitting KV writes takes), and so does a new id the
      // room never deleted (a quarter of the mutations at one room's saturation).
      if (!prev && !noTombstone) writes.delete(this.#key(roomId, "tomb", record.id));
    });
    for (const { id, prev } of changes.deletes) {
      writes.delete(this.#key(roomId, "rec", id));
      this.#records.deleteChunks(writes, roomId, prev);
      writes.set(this.#key(roomId, "tomb", id), clock, 64);
    }
    return { writes, ...logEntryOf(changes) };
  }

  /** See {@link RoomStore.saveSnapshot}. */
  saveSnapshot(roomId: string, clock: number, records: readonly StoredRecord[]): Promise<boolean> {
    return this.#snapshots?.save(roomId, clock, records) ?? Promise.resolve(false);
  }

  async readClock(roomId: string): Promise<number> {
    return (await this.#readMeta(roomId)).value?.documentClock ?? -1;
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
    const log = await this.#log.read(roomId, since, clock, meta.t);
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
    // Every id's head and tombstone, read once however many steps list it (a shape moved in each
    // of 50 steps is one key, not 50 reads).
    const distinct = [...new Set(unresolved.flatMap(({ ids }) => ids))];
    const heads = new Map((await this.#records.heads(roomId, distinct)).map((h) => [h.id, h]));
    for (const { step, ids } of unresolved) {
      for (const id of ids) {
        const { head, tombstone } = heads.get(id)!;
        // Only what is still as that clock left it; later changes come with their own step.
        if (head && head.c === step.clock) {
          const json = await this.#records.json(roomId, id, head);
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

  async pruneTombstones(roomId: string, expectedClock: number, startsAt: number): Promise<boolean> {
    const entry = await this.#settledMeta(roomId);
    if (!entry.value || entry.value.documentClock !== expectedClock) return false;
    const meta = { ...entry.value, tombstoneHistoryStartsAtClock: startsAt };
    this.#pipes.delete(roomId);
    const write = this.#kv.atomic().check(entry).set(this.#key(roomId, "meta"), meta);
    // It fences pipelined commits, which would write the old cutoff back (kv_pipeline.ts).
    if (this.remote) write.set(this.#key(roomId, "lease"), expectedClock);
    const result = await write.commit();
    if (!result.ok) return false;
    this.#remember(roomId, { meta, versionstamp: result.versionstamp });
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

  putSession(roomId: string, entry: SessionEntry, ttlMs: number): Promise<void> {
    return this.#sessions.putSession(roomId, entry, ttlMs);
  }

  deleteSession(roomId: string, sessionId: string): Promise<void> {
    return this.#sessions.deleteSession(roomId, sessionId);
  }

  listSessions(roomId: string): Promise<SessionEntry[]> {
    return this.#sessions.listSessions(roomId);
  }

  async deleteRoom(roomId: string): Promise<void> {
    // The meta key first: a commit racing the delete then fails its versionstamp check (and a
    // pipelined one its lease check).
    await this.#kv.atomic()
      .delete(this.#key(roomId, "meta"))
      .delete(this.#key(roomId, "lease"))
      .commit();
    this.#known.delete(roomId);
    this.#pipes.delete(roomId);
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

/**
 * Compacted snapshots of big rooms in KV: the whole document at one clock as a few text pieces
 * (`snapchunk, id, i`: lines `clock<TAB>"id"<TAB>json`), named by the `snap` key. A cold load then
 * reads a few dozen values plus the change log after the snapshot, instead of one key per record.
 * Never needed for correctness: without a usable snapshot the store lists every record.
 *
 * @module
 */
import type { LogRing, LogSlot } from "./kv_log_ring.ts";
import type { KvRecords } from "./kv_records.ts";
import { CHUNK_CHARS, deletePieces, type KvContext, writePieces } from "./kv_writes.ts";
import type { WireRecord } from "./protocol.ts";
import { LazyRecord, rememberRecordJson, storedRecordId, storedRecordJson } from "./record_json.ts";
import type { RoomData, RoomMeta, StoredRecord } from "./room_store.ts";

/** The `snap` key's value: which pieces hold the snapshot, and the clock it was taken at. */
type SnapshotHead = { id: string; clock: number; pieces: number };

/** What changed after a clock: the current state of the records touched since, and deletions. */
type ChangesAfter = { kind: "changes"; records: StoredRecord[]; deletes: string[] } | {
  kind: "gap";
};

/** Snapshots of one KV room store. */
export class KvSnapshots {
  readonly #ctx: KvContext;
  readonly #records: KvRecords;
  readonly #log: LogRing;

  constructor(ctx: KvContext, records: KvRecords, log: LogRing) {
    this.#ctx = ctx;
    this.#records = records;
    this.#log = log;
  }

  #pieceKey(roomId: string, id: string): (index: number) => Deno.KvKey {
    return (i) => this.#ctx.key(roomId, "snapchunk", id, i);
  }

  /**
   * The room at `meta`'s clock from its snapshot and the change log after it, or `undefined` when
   * there is no snapshot or the log no longer reaches back to it (`tail`: the newest entries, kept in
   * the meta; kv_log_ring.ts). Like a listing, the result may
   * lag commits landing meanwhile: the room catches up from its clock right after loading.
   */
  async load(roomId: string, meta: RoomMeta, tail?: LogSlot): Promise<RoomData | undefined> {
    const reader = this.#ctx.reader();
    const head = (await reader.get<SnapshotHead>(this.#ctx.key(roomId, "snap"))).value;
    if (
      !head || head.clock > meta.documentClock ||
      head.clock < meta.tombstoneHistoryStartsAtClock ||
      meta.documentClock - head.clock >= this.#log.size
    ) return undefined;
    const startsAt = meta.tombstoneHistoryStartsAtClock;
    const [pieces, changes, tombstones] = await Promise.all([
      this.#records.listAll<string>(roomId, "snapchunk", head.id),
      this.#changesAfter(roomId, head.clock, meta.documentClock, tail),
      this.#records.tombstones(roomId, startsAt),
    ]);
    if (changes.kind === "gap" || pieces.length !== head.pieces) return undefined;
    const byId = new Map<string, StoredRecord>();
    for (const line of pieces.map((entry) => entry.value).join("").split("\n")) {
      const record = parseSnapshotLine(line);
      if (record) byId.set(storedRecordId(record), record);
    }
    for (const record of changes.records) byId.set(record.state.id, record);
    for (const id of changes.deletes) byId.delete(id);
    return { meta, records: [...byId.values()], tombstones };
  }

  /**
   * What changed after `since` up to `clock`: the current state of every record the log
   * names (a record may show a later change; applying it is still safe) and the deleted ids.
   */
  async #changesAfter(
    roomId: string,
    since: number,
    clock: number,
    tail: LogSlot | undefined,
  ): Promise<ChangesAfter> {
    if (since === clock) return { kind: "changes", records: [], deletes: [] };
    const log = await this.#log.read(roomId, since, clock, tail);
    if (!log) return { kind: "gap" };
    const touched = new Set<string>();
    for (const entry of log) {
      for (const id of entry.p) touched.add(id);
      for (const id of entry.d) touched.add(id);
    }
    const records: StoredRecord[] = [];
    const deletes: string[] = [];
    for (const { id, head, tombstone } of await this.#records.heads(roomId, [...touched])) {
      if (head) {
        const json = await this.#records.json(roomId, id, head);
        if (json === undefined) return { kind: "gap" }; // superseded while reading
        const state = JSON.parse(json);
        rememberRecordJson(state, json);
        records.push({ state, lastChangedClock: head.c, chars: json.length });
      } else if (tombstone !== null) deletes.push(id);
    }
    return { kind: "changes", records, deletes };
  }

  /**
   * Stores `records` (the whole document at `clock`) as the room's snapshot, unless one at `clock`
   * or later exists. The pieces are written first under a new id, then the `snap` key is switched
   * to them (checked against a concurrent writer), then the old pieces are deleted; a crash in
   * between leaves unreferenced pieces until the room is deleted. Returns whether this snapshot
   * became the room's.
   */
  async save(roomId: string, clock: number, records: readonly StoredRecord[]): Promise<boolean> {
    const kv = this.#ctx.kv;
    const headKey = this.#ctx.key(roomId, "snap");
    const current = await kv.get<SnapshotHead>(headKey);
    if (current.value && current.value.clock >= clock) return false;
    const id = crypto.randomUUID();
    const count = await writePieces(kv, this.#pieceKey(roomId, id), snapshotPieces(records));
    const head: SnapshotHead = { id, clock, pieces: count };
    const switched = await kv.atomic().check(current).set(headKey, head).commit();
    const stale = switched.ok ? current.value : head;
    if (stale) await deletePieces(kv, this.#pieceKey(roomId, stale.id), stale.pieces);
    return switched.ok;
  }
}

/**
 * The snapshot text of `records` (a line per record, see {@link parseSnapshotLine}) in pieces of at
 * most ~60 KB stored (KV: 64 KiB a value; V8 keeps a piece with a character above U+00FF as
 * UTF-16, so such a piece holds half as many). Built a few pieces at a time as they are written:
 * building a 40,000-shape room's whole text at once held the serving thread ~55 ms.
 */
function* snapshotPieces(records: readonly StoredRecord[]): Generator<string> {
  const wide = /[\u0100-\uffff]/;
  let text = "";
  function* cut(atLeast: number): Generator<string> {
    while (text.length >= atLeast) {
      const size = wide.test(text.slice(0, 2 * CHUNK_CHARS)) ? CHUNK_CHARS : 2 * CHUNK_CHARS;
      yield text.slice(0, size);
      text = text.slice(size);
    }
  }
  for (const record of records) {
    const id = JSON.stringify(storedRecordId(record));
    text += `${record.lastChangedClock}\t${id}\t${storedRecordJson(record)}\n`;
    yield* cut(2 * CHUNK_CHARS);
  }
  yield* cut(1);
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
    const quoted = line.slice(tab + 1, idEnd);
    // Without a backslash the JSON string is its content between the quotes.
    const id = quoted.includes("\\") ? JSON.parse(quoted) as string : quoted.slice(1, -1);
    return new LazyRecord(id, line.slice(idEnd + 1), clock);
  }
  const json = line.slice(tab + 1);
  const state = JSON.parse(json) as WireRecord;
  rememberRecordJson(state, json);
  return { state, lastChangedClock: clock, chars: json.length };
}

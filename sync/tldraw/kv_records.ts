/**
 * How the KV room store keeps a room's records: one `rec` key per record holding its JSON (or, above
 * {@link CHUNK_CHARS}, the number of `chunk` pieces), and one `tomb` key per deleted id. Chunk keys
 * carry the clock that wrote them, so a reader that saw a head never mixes pieces of two versions.
 *
 * @module
 */
import type { WireRecord } from "./protocol.ts";
import { LazyRecord, recordJson, storedRecordId } from "./record_json.ts";
import type { StoredRecord } from "./room_store.ts";
import { byteSize, CHUNK_CHARS, joinPieces, type KvContext, type Writes } from "./kv_writes.ts";

/** A `rec` value: the record's JSON, or how many chunks of the clock `c` hold it. */
export type Head = { c: number; j: string } | { c: number; n: number };

// kv.list returns at most this many entries per round trip.
const LIST_BATCH_SIZE = 500;
// kv.getMany reads at most 10 keys.
const GET_MANY_LIMIT = 10;
// getMany reads in flight at once for one caller (a remote KV answers them in parallel).
const READS_AT_ONCE = 8;

/** The record and tombstone keys of one room. */
export class KvRecords {
  readonly #ctx: KvContext;

  constructor(ctx: KvContext) {
    this.#ctx = ctx;
  }

  /** Writes `record` as changed at `clock` (its JSON when known); drops `prev`'s old chunks. */
  write(
    writes: Writes,
    roomId: string,
    record: WireRecord,
    clock: number,
    prev: StoredRecord | undefined,
    json = recordJson(record),
  ): void {
    const key = this.#ctx.key;
    if (json.length <= CHUNK_CHARS) {
      writes.set(key(roomId, "rec", record.id), { c: clock, j: json }, byteSize(json) + 64);
    } else {
      const count = Math.ceil(json.length / CHUNK_CHARS);
      for (let i = 0; i < count; i++) {
        const piece = json.slice(i * CHUNK_CHARS, (i + 1) * CHUNK_CHARS);
        writes.set(key(roomId, "chunk", record.id, clock, i), piece, byteSize(piece) + 64);
      }
      writes.set(key(roomId, "rec", record.id), { c: clock, n: count }, 64);
    }
    if (prev && prev.lastChangedClock !== clock) this.deleteChunks(writes, roomId, prev);
  }

  /** Deletes the chunks of `prev` (a record stored at `prev.lastChangedClock`), if it had any. */
  deleteChunks(writes: Writes, roomId: string, prev: StoredRecord): void {
    // The engine's cached records carry their JSON length: no need to serialize them again.
    const chars = (prev as { chars?: unknown }).chars;
    const length = typeof chars === "number" ? chars : JSON.stringify(prev.state).length;
    if (length <= CHUNK_CHARS) return;
    const count = Math.ceil(length / CHUNK_CHARS);
    for (let i = 0; i < count; i++) {
      writes.delete(
        this.#ctx.key(roomId, "chunk", storedRecordId(prev), prev.lastChangedClock, i),
      );
    }
  }

  /** Every entry under `parts` of the room, in the largest batches KV allows. */
  async listAll<T>(roomId: string, ...parts: Deno.KvKeyPart[]): Promise<Deno.KvEntry<T>[]> {
    const entries: Deno.KvEntry<T>[] = [];
    const iter = this.#ctx.reader().list<T>({ prefix: this.#ctx.key(roomId, ...parts) }, {
      batchSize: LIST_BATCH_SIZE,
    });
    for await (const entry of iter) entries.push(entry);
    return entries;
  }

  /**
   * Every record (unparsed until used) and every tombstone from `historyStartsAt` on. A listing is
   * not a snapshot: a commit landing meanwhile may be half visible (the caller catches up after).
   */
  async list(
    roomId: string,
    historyStartsAt: number,
  ): Promise<{ records: StoredRecord[]; tombstones: Map<string, number> }> {
    const [recEntries, chunkEntries, tombstones] = await Promise.all([
      this.listAll<Head>(roomId, "rec"),
      this.listAll<string>(roomId, "chunk"),
      this.tombstones(roomId, historyStartsAt),
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
    return { records, tombstones };
  }

  /** Tombstones at `historyStartsAt` or later (older ones are ignored by every reader). */
  async tombstones(roomId: string, historyStartsAt: number): Promise<Map<string, number>> {
    const tombstones = new Map<string, number>();
    for (const entry of await this.listAll<number>(roomId, "tomb")) {
      if (entry.value >= historyStartsAt) tombstones.set(String(entry.key.at(-1)), entry.value);
    }
    return tombstones;
  }

  /**
   * The record head and tombstone of each id, read together (KV reads 10 keys at a time; up to
   * {@link READS_AT_ONCE} such reads at once, not one round trip after another).
   */
  async heads(
    roomId: string,
    ids: string[],
  ): Promise<{ id: string; head: Head | null; tombstone: number | null }[]> {
    const key = this.#ctx.key;
    const batches: string[][] = [];
    for (let i = 0; i < ids.length; i += GET_MANY_LIMIT / 2) {
      batches.push(ids.slice(i, i + GET_MANY_LIMIT / 2));
    }
    const readBatch = async (batch: string[]) => {
      const keys = batch.flatMap((id) => [key(roomId, "rec", id), key(roomId, "tomb", id)]);
      const entries = await this.#ctx.reader().getMany<(Head | number)[]>(keys);
      return batch.map((id, j) => ({
        id,
        head: (entries[2 * j]?.value ?? null) as Head | null,
        tombstone: (entries[2 * j + 1]?.value ?? null) as number | null,
      }));
    };
    const out: { id: string; head: Head | null; tombstone: number | null }[] = [];
    for (let i = 0; i < batches.length; i += READS_AT_ONCE) {
      const read = await Promise.all(batches.slice(i, i + READS_AT_ONCE).map(readBatch));
      for (const part of read) out.push(...part);
    }
    return out;
  }

  /** The JSON a head stands for, or `undefined` when its chunks were replaced meanwhile. */
  async json(roomId: string, id: string, head: Head): Promise<string | undefined> {
    if ("j" in head) return head.j;
    const pieces: string[] = [];
    const prefix = this.#ctx.key(roomId, "chunk", id, head.c);
    for await (const entry of this.#ctx.reader().list<string>({ prefix })) {
      pieces[entry.key.at(-1) as number] = entry.value;
    }
    return joinPieces(pieces, head.n);
  }
}

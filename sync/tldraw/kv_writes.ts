/**
 * What one KV atomic operation can hold, and the mutation lists the KV room store builds against
 * it: sizes are counted as mutations are added, so the store knows before writing whether they fit
 * (KV: 1,000 mutations and 800 KiB per atomic operation, 64 KiB per value, 2 KiB per key). Also the
 * pieces that carry text too long for one value (staged commits, snapshots).
 *
 * @module
 */
import { RoomStoreError, StoreFailure } from "./room_store.ts";

/** Characters per chunk: at most 60 KB even when V8 stores the string as UTF-16 (KV: 64 KiB). */
export const CHUNK_CHARS = 30_000;
/** Mutations per atomic operation, with a margin below KV's 1,000. */
export const MAX_MUTATIONS = 990;
/** Bytes per atomic operation, with a margin below KV's 800 KiB for keys and meta. */
export const MAX_ATOMIC_BYTES = 780_000;
// Pieces written per atomic operation (10 × 60 KB).
const PIECES_PER_OP = 10;

/** The keys of the KV room store and the handles it writes and reads with. */
export interface KvContext {
  /** The handle every write goes through. */
  readonly kv: Deno.Kv;
  /** The handle reads go through (a second handle on a local file; else {@link kv}). */
  reader(): Deno.Kv;
  /** A key of `roomId`: `[...prefix, roomId, ...parts]`. */
  key(roomId: string, ...parts: Deno.KvKeyPart[]): Deno.KvKey;
}

/** One KV mutation: a set (with its approximate size) or, without `value`, a delete. */
export interface Mutation {
  key: Deno.KvKey;
  value?: unknown;
  size: number;
}

/** Mutations, counted against the limits of one atomic operation. */
export class Writes {
  readonly list: Mutation[] = [];
  bytes = 0;

  static from(list: readonly Mutation[]): Writes {
    const writes = new Writes();
    for (const m of list) writes.add(m);
    return writes;
  }

  set(key: Deno.KvKey, value: unknown, size: number): void {
    this.add({ key, value, size });
  }

  delete(key: Deno.KvKey): void {
    this.add({ key, size: 0 });
  }

  add(mutation: Mutation): void {
    this.list.push(mutation);
    this.bytes += mutationBytes(mutation);
  }

  /** Whether these plus `extraMutations` totalling `extraBytes` fit one atomic operation. */
  fitsWith(extraMutations: number, extraBytes: number): boolean {
    return fits(this.list.length + extraMutations, this.bytes + extraBytes);
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
      if (batch.list.length > 0 && !batch.fitsWith(1, mutationBytes(m))) {
        yield batch;
        batch = new Writes();
      }
      batch.add(m);
    }
    if (batch.list.length > 0) yield batch;
  }
}

/**
 * Mutations merged by key (a later mutation of a key replaces the earlier one), counted as they
 * come: the writes of several commit steps, where a record changed by two steps is written once.
 * {@link tryMerge} adds a step's mutations only if the total still fits.
 */
export class MergedWrites {
  readonly #byKey = new Map<string, Mutation>();
  #bytes = 0;

  get size(): number {
    return this.#byKey.size;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Adds `writes` unless the result plus `extraMutations` / `extraBytes` (what the caller writes
   * besides: log, meta) would not fit one atomic operation. Returns whether they were added.
   */
  tryMerge(writes: Writes, extraMutations: number, extraBytes: number): boolean {
    const keys = writes.list.map((m) => JSON.stringify(m.key));
    let count = this.#byKey.size;
    let bytes = this.#bytes;
    const seen = new Map<string, number>();
    keys.forEach((key, i) => {
      const replaced = seen.get(key) ?? this.#existingBytes(key);
      if (replaced === undefined) count++;
      else bytes -= replaced;
      const added = mutationBytes(writes.list[i]!);
      bytes += added;
      seen.set(key, added);
    });
    if (!fits(count + extraMutations, bytes + extraBytes)) return false;
    keys.forEach((key, i) => this.#byKey.set(key, writes.list[i]!));
    this.#bytes = bytes;
    return true;
  }

  #existingBytes(key: string): number | undefined {
    const existing = this.#byKey.get(key);
    return existing && mutationBytes(existing);
  }

  /** The merged mutations as one list. */
  toWrites(): Writes {
    return Writes.from([...this.#byKey.values()]);
  }
}

/** Whether `mutations` totalling `bytes` fit one atomic operation. */
export function fits(mutations: number, bytes: number): boolean {
  return mutations <= MAX_MUTATIONS && bytes <= MAX_ATOMIC_BYTES;
}

function mutationBytes(mutation: Mutation): number {
  return mutation.size + keySize(mutation.key);
}

/** Approximate stored size of a key. */
export function keySize(key: Deno.KvKey): number {
  let size = 0;
  for (const part of key) size += typeof part === "string" ? byteSize(part) + 2 : 10;
  return size;
}

/** Upper bound of a string's stored size: V8 keeps non-Latin-1 strings as UTF-16. */
export function byteSize(text: string): number {
  // deno-lint-ignore no-control-regex
  return /[^\u0000-\u00ff]/.test(text) ? text.length * 2 : text.length;
}

/**
 * Writes `pieces` under `key(0)`, `key(1)`, … a few per atomic operation (staged commits,
 * snapshots), taking them from the iterable as it goes: a generator of pieces builds each next few
 * only after the previous operation returned, so a big text is never built in one go. Writes one
 * empty piece when there is none. Returns how many; throws `write_failed` if a write fails.
 */
export async function writePieces(
  kv: Deno.Kv,
  key: (index: number) => Deno.KvKey,
  pieces: Iterable<string>,
): Promise<number> {
  let count = 0;
  let op = kv.atomic();
  const commit = async () => {
    if (!(await op.commit()).ok) {
      throw new RoomStoreError(StoreFailure.write_failed, "piece write failed");
    }
    op = kv.atomic();
  };
  for (const piece of pieces) {
    op.set(key(count++), piece);
    if (count % PIECES_PER_OP === 0) await commit();
  }
  if (count === 0) op.set(key(count++), "");
  if (count % PIECES_PER_OP !== 0) await commit();
  return count;
}

/** `text` in pieces of `size` characters. */
export function* slicePieces(text: string, size: number): Generator<string> {
  for (let at = 0; at < text.length; at += size) yield text.slice(at, at + size);
}

/** Deletes the pieces `key(0)` … `key(count - 1)`. */
export async function deletePieces(
  kv: Deno.Kv,
  key: (index: number) => Deno.KvKey,
  count: number,
): Promise<void> {
  for (let first = 0; first < count; first += MAX_MUTATIONS) {
    const op = kv.atomic();
    for (let i = first; i < Math.min(count, first + MAX_MUTATIONS); i++) op.delete(key(i));
    await op.commit();
  }
}

/** The pieces as one text, or `undefined` when one of the `count` is missing. */
export function joinPieces(pieces: string[] | undefined, count: number): string | undefined {
  if (!pieces || pieces.length !== count) return undefined;
  for (let i = 0; i < count; i++) if (pieces[i] === undefined) return undefined;
  return pieces.join("");
}

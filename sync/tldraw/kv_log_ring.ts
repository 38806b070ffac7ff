/**
 * The KV room store's change log: a ring of `logSize` slots per room (`ring, clock % logSize`).
 * A commit writes the entries of its clocks `f`…`c` into the slot of `c`, several clocks to a slot
 * when they fit; the slots of `f`…`c − 1` are left as they were. A reader knows a slot holds the
 * entries it looks for by `c` (an older lap's, or a later one's, have another), so the log is read
 * with one or two range reads and never needs deleting.
 *
 * On a local KV the newest entries may instead stay in the room's meta (its `t`, a slot of the clocks
 * up to the meta's), which every commit writes anyway: a commit then dirties one page fewer of the
 * SQLite file (the meta's and the records', not a ring slot's as well) until the tail outgrows
 * {@link MAX_TAIL_BYTES} and goes to the ring with the commit's own entries. Readers take the entries
 * the tail holds from the meta they read first.
 *
 * Per clock an entry lists the ids written (`p`) and deleted (`d`) and the origin (`o`) of a
 * forwarded push; a commit listing too many ids is logged as `bulk` (readers of it reload the room).
 * Readers of a step read its records (those still as that clock left them). Entries written before
 * may also hold the records' JSON (`j`), which readers use. Writing the values into the log too,
 * while another isolate shared the room, doubled what a commit wrote (measured, 200 rooms spread over
 * 2 isolates: the SQLite threads 0.34 → 0.18 cores without them); that isolate gets the changes in
 * the commit notices, and reads the log only after a lost one.
 *
 * @module
 */
import { type KvContext, Writes } from "./kv_writes.ts";
import type { ChangeSet } from "./room_store.ts";

/** One clock's entry: the ids it wrote and deleted, maybe the push's origin (older logs: values). */
export type IdsEntry = { p: string[]; d: string[]; j?: string[]; o?: string };
/** A clock's entry, or a marker that it changed too much to list (readers reload). */
export type LogEntry = IdsEntry | { bulk: true; o?: string };
/** A slot: the entries of the clocks `f`…`c`. */
export type LogSlot = { f: number; c: number; s: LogEntry[] };

/**
 * Most bytes of entries a meta's tail holds (the entries taken over from a meta counted by their
 * JSON, new ones by their estimate): the meta and its key stay below what an SQLite page keeps
 * inline (~1,000 bytes for denokv's table), so the tail adds no overflow page.
 */
export const MAX_TAIL_BYTES = 600;
// A log entry listing more ids than this is stored as "bulk": readers of it reload the room.
const MAX_LOG_ENTRY_CHARS = 50_000;
// Most bytes of log entries one slot holds (KV: 64 KiB a value).
const MAX_LOG_SLOT_BYTES = 56_000;
/** The log entry of one step, with its approximate stored size. */
export function logEntryOf(changes: ChangeSet): { entry: LogEntry; size: number } {
  const ids = { p: changes.puts.map((p) => p.record.id), d: changes.deletes.map((d) => d.id) };
  const idsSize = JSON.stringify(ids).length;
  const origin = changes.origin ? { o: changes.origin } : {};
  const entry: LogEntry = idsSize > MAX_LOG_ENTRY_CHARS
    ? { bulk: true, ...origin }
    : { ...ids, ...origin };
  return {
    entry,
    size: Math.min(idsSize, MAX_LOG_ENTRY_CHARS) + 64 + (changes.origin?.length ?? 0),
  };
}

/** One room's change-log ring. */
export class LogRing {
  readonly #ctx: KvContext;
  readonly #size: number;

  constructor(ctx: KvContext, size: number) {
    this.#ctx = ctx;
    this.#size = size;
  }

  /** Clocks the ring reaches back. */
  get size(): number {
    return this.#size;
  }

  /** The slot key of `clock`. */
  key(roomId: string, clock: number): Deno.KvKey {
    return this.#ctx.key(roomId, "ring", clock % this.#size);
  }

  /**
   * Packs the entries of a commit's consecutive clocks into slots (see {@link LogSlots}), after
   * `tail`: the entries the room's meta holds, which end at the clock before the commit's first.
   */
  slots(roomId: string, tail?: LogSlot): LogSlots {
    return new LogSlots(this, roomId, tail);
  }

  /**
   * The entries of the clocks `(since, clock]`, in order, or `undefined` when one of them is no
   * longer there (its slot holds a later clock), was logged as bulk, or the range is longer than
   * the ring. One or two range reads (the ring may wrap inside it).
   */
  async read(
    roomId: string,
    since: number,
    clock: number,
    tail?: LogSlot,
  ): Promise<(IdsEntry & { c: number })[] | undefined> {
    const size = this.#size;
    if (clock - since > size) return undefined;
    // The newest entries may be the meta's tail (which ends at the meta's clock).
    const fromTail = tail && tail.c === clock ? tail : undefined;
    const ringEnd = fromTail ? Math.min(clock, fromTail.f - 1) : clock;
    const entries = ringEnd > since ? await this.#readRing(roomId, since, ringEnd) : [];
    if (!entries) return undefined;
    if (fromTail) {
      for (let at = Math.max(since + 1, fromTail.f); at <= clock; at++) {
        const entry = fromTail.s[at - fromTail.f];
        if (!entry || "bulk" in entry) return undefined;
        entries.push({ ...entry, c: at });
      }
    }
    return entries;
  }

  async #readRing(
    roomId: string,
    since: number,
    clock: number,
  ): Promise<(IdsEntry & { c: number })[] | undefined> {
    const size = this.#size;
    const first = (since + 1) % size;
    const last = clock % size;
    const ranges = first <= last ? [[first, last + 1]] : [[first, size], [0, last + 1]];
    const entries: (IdsEntry & { c: number })[] = [];
    let expected = since + 1;
    for (const [start, end] of ranges) {
      const iter = this.#ctx.reader().list<LogSlot>({
        start: this.#ctx.key(roomId, "ring", start!),
        end: this.#ctx.key(roomId, "ring", end!),
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
}

/**
 * The slots of one commit's clocks, filled in clock order: an entry that would make the open slot
 * larger than a KV value may be starts the next one. {@link tryAdd} checks the caller's size budget.
 */
export class LogSlots {
  readonly #ring: LogRing;
  readonly #roomId: string;
  readonly #closed: { slot: LogSlot; size: number }[] = [];
  #open: { slot: LogSlot; size: number } | undefined;
  // JSON length of the open slot's entries (what a tail is measured by), kept only while the slot
  // may still become a tail (its size only grows).
  #openChars = 0;

  constructor(ring: LogRing, roomId: string, tail?: LogSlot) {
    this.#ring = ring;
    this.#roomId = roomId;
    if (tail && tail.s.length > 0) {
      this.#openChars = tailChars.get(tail) ?? JSON.stringify(tail.s).length;
      this.#open = { slot: { f: tail.f, c: tail.c, s: [...tail.s] }, size: this.#openChars + 64 };
    }
  }

  /**
   * The entries as a meta's tail, when they fit one ({@link MAX_TAIL_BYTES}); the ring is then not
   * written ({@link writes} with `keepTail`).
   */
  tail(): LogSlot | undefined {
    const open = this.#open;
    if (this.#closed.length > 0 || !open || open.size > MAX_TAIL_BYTES) return undefined;
    tailChars.set(open.slot, this.#openChars);
    return open.slot;
  }

  /** Slots written so far (mutations) and their bytes. */
  get mutations(): number {
    return this.#closed.length + (this.#open ? 1 : 0);
  }

  get bytes(): number {
    let bytes = this.#open?.size ?? 0;
    for (const { size } of this.#closed) bytes += size;
    return bytes;
  }

  /**
   * What adding the entry of `clock` would cost: mutations and bytes of the slots afterwards.
   * Pure: {@link add} does it.
   */
  costWith(size: number): { mutations: number; bytes: number } {
    const open = this.#open;
    if (open && open.size + size <= MAX_LOG_SLOT_BYTES) {
      return { mutations: this.mutations, bytes: this.bytes + size };
    }
    return { mutations: this.mutations + 1, bytes: this.bytes + size + 64 };
  }

  /** Adds the entry of `clock` (the clock after the last one added). */
  add(clock: number, entry: LogEntry, size: number): void {
    const open = this.#open;
    if (open && open.size + size <= MAX_LOG_SLOT_BYTES) {
      open.slot.c = clock;
      open.slot.s.push(entry);
      open.size += size;
      if (open.size <= MAX_TAIL_BYTES) this.#openChars += 1 + JSON.stringify(entry).length;
      return;
    }
    if (open) this.#closed.push(open);
    this.#open = { slot: { f: clock, c: clock, s: [entry] }, size: size + 64 };
    this.#openChars = size + 64 <= MAX_TAIL_BYTES ? 2 + JSON.stringify(entry).length : 0;
  }

  /** The slots as mutations; none when `keepTail` and they fit a meta's tail ({@link tail}). */
  writes(keepTail = false): Writes {
    const writes = new Writes();
    if (keepTail && this.tail()) return writes;
    const all = this.#open ? [...this.#closed, this.#open] : this.#closed;
    for (const { slot, size } of all) {
      writes.set(this.#ring.key(this.#roomId, slot.c), slot, size);
    }
    return writes;
  }
}

// The JSON length of the entries of the tails this isolate wrote (a tail object is never changed
// once written): the room's next commit starts from it, and serializing the whole tail again at
// every commit was ~2 % of a 100-room load's CPU.
const tailChars = new WeakMap<LogSlot, number>();

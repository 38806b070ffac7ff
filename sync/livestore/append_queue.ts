/**
 * Per-store ordering of appends inside this process, plus a lower bound of each store's head.
 *
 * The database is the authority (its compare-and-set decides), but when many clients of one store push
 * at once, all but one are bound to lose. Queuing them here and refusing a push whose parent is already
 * below a head we know turns those losers into immediate `ServerAheadError`s instead of database round
 * trips. Heads only grow, so a known head is always safe to refuse against.
 *
 * @module
 */

/** Orders appends per store and remembers the highest head seen per store. */
export class AppendQueue {
  readonly #tails = new Map<string, Promise<unknown>>();
  readonly #heads = new Map<string, number>();
  readonly #maxStores: number;

  /** `maxStores` bounds the remembered heads (oldest forgotten first; forgetting only costs a round trip). */
  constructor(maxStores = 100_000) {
    this.#maxStores = maxStores;
  }

  /** Records that `storeId`'s head is at least `head`. */
  observe(storeId: string, head: number): void {
    const known = this.#heads.get(storeId);
    if (known !== undefined && known >= head) return;
    this.#heads.delete(storeId);
    this.#heads.set(storeId, head);
    if (this.#heads.size > this.#maxStores) {
      const oldest = this.#heads.keys().next().value;
      if (oldest !== undefined) this.#heads.delete(oldest);
    }
  }

  /** A lower bound of the store's head, if one is known. */
  knownHead(storeId: string): number | undefined {
    return this.#heads.get(storeId);
  }

  /** Runs `fn` after every earlier `run` for the same store has settled. */
  run<T>(storeId: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(storeId) ?? Promise.resolve();
    const current = previous.then(fn, fn);
    const tail = current.catch(() => {});
    this.#tails.set(storeId, tail);
    // Forget the chain once it is idle, so that the map holds busy stores only.
    tail.then(() => {
      if (this.#tails.get(storeId) === tail) this.#tails.delete(storeId);
    });
    return current;
  }
}

/**
 * Per-user rate limits in Deno KV, so that every isolate counts against the same budget: a fixed window
 * counter per (bucket, user) updated with an atomic check-and-set, expiring with its window.
 *
 * @module
 */

/** A limit: at most `limit` events per `windowMs`. */
export interface RateLimit {
  limit: number;
  windowMs: number;
}

/** Told the bucket's name each time a limit refuses an event (metrics). */
export type RateLimitObserver = (bucket: string) => void;

/** Counts events per user in KV. */
export class KvRateLimiter {
  readonly #kv: Deno.Kv;
  readonly #bucket: string;
  readonly #rate: RateLimit;
  readonly #onLimited: RateLimitObserver | undefined;

  /** `bucket` separates independent limits (e.g. `user_sync_connect`). */
  constructor(kv: Deno.Kv, bucket: string, rate: RateLimit, onLimited?: RateLimitObserver) {
    this.#kv = kv;
    this.#bucket = bucket;
    this.#rate = rate;
    this.#onLimited = onLimited;
  }

  /** Counts one event for `userId`; `true` when that exceeds the limit (the caller refuses the event). */
  async isLimited(userId: string, now = Date.now()): Promise<boolean> {
    const limited = await this.#count(userId, now);
    if (limited) this.#onLimited?.(this.#bucket);
    return limited;
  }

  async #count(userId: string, now: number): Promise<boolean> {
    const window = Math.floor(now / this.#rate.windowMs);
    const key = ["rate_limit", this.#bucket, userId, window];
    for (let attempt = 0; attempt < 20; attempt++) {
      const current = await this.#kv.get<number>(key);
      const count = current.value ?? 0;
      if (count >= this.#rate.limit) return true;
      const result = await this.#kv.atomic().check(current).set(key, count + 1, {
        expireIn: this.#rate.windowMs * 2,
      }).commit();
      if (result.ok) return false;
    }
    // Heavy contention on one user's counter is itself a sign of abuse.
    return true;
  }
}

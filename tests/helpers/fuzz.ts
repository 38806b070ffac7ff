/**
 * Seeded randomness for fuzz tests: a small PRNG, choices, and the seeds to run (a fixed list in
 * CI, more with `FUZZ_SEEDS=<n>`, or one seed to replay with `FUZZ_SEED=<seed>`). A failing seed is
 * printed with the command that replays it.
 *
 * @module
 */

/** A seeded pseudo-random source (mulberry32): the same seed gives the same sequence. */
export class Random {
  #state: number;

  constructor(readonly seed: number) {
    this.#state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /** One of `items`. */
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }

  /** `true` with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /** A string of `length` characters from the printable ASCII range and some Unicode. */
  text(length: number): string {
    const alphabet = 'abcXYZ019 {}[]":,\\/-_.~!@#$%^&*()é☃\u0000\u2028';
    let out = "";
    for (let i = 0; i < length; i++) out += alphabet[this.int(0, alphabet.length - 1)];
    return out;
  }

  /** Random bytes. */
  bytes(length: number): Uint8Array {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) out[i] = this.int(0, 255);
    return out;
  }

  /** A random JSON value of small depth (for wrongly-typed fields). */
  json(depth = 2): unknown {
    const kind = this.int(0, depth > 0 ? 6 : 4);
    switch (kind) {
      case 0:
        return null;
      case 1:
        return this.chance(0.5);
      case 2:
        return this.pick([0, -1, 1e308, -0, 2 ** 53 + 1, 3.5]);
      case 3:
        return this.text(this.int(0, 12));
      case 4:
        return [];
      case 5:
        return Array.from({ length: this.int(1, 3) }, () => this.json(depth - 1));
      default:
        return Object.fromEntries(
          Array.from({ length: this.int(1, 3) }, () => [this.text(4), this.json(depth - 1)]),
        );
    }
  }
}

/** The seeds to run: `FUZZ_SEED` (one, to replay), `FUZZ_SEEDS=<n>` (n random), else `fixed`. */
export function fuzzSeeds(fixed: readonly number[]): number[] {
  const one = Deno.env.get("FUZZ_SEED");
  if (one) return [Number(one)];
  const many = Number(Deno.env.get("FUZZ_SEEDS") ?? 0);
  if (many > 0) {
    return Array.from({ length: many }, () => crypto.getRandomValues(new Uint32Array(1))[0]!);
  }
  return [...fixed];
}

/** How many rounds each seed runs (`FUZZ_ROUNDS`, else `fallback`). */
export function fuzzRounds(fallback: number): number {
  return Number(Deno.env.get("FUZZ_ROUNDS") ?? fallback);
}

/** Runs `body` for `seed`; a failure names the seed and how to replay it. */
export async function withSeed(
  name: string,
  seed: number,
  body: (random: Random) => Promise<void>,
): Promise<void> {
  try {
    await body(new Random(seed));
  } catch (error) {
    const replay = `FUZZ_SEED=${seed} deno test -A --filter "${name}"`;
    console.error(`\n${name}: seed ${seed} failed; replay with: ${replay}\n`);
    throw error;
  }
}

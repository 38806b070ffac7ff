/**
 * Latency samples and their summary (nearest-rank percentiles).
 *
 * @module
 */
import type { LatencySummary } from "./load_spec.ts";

/** Collects millisecond samples. */
export class LatencySample {
  readonly #values: number[] = [];

  add(ms: number): void {
    this.#values.push(ms);
  }

  get count(): number {
    return this.#values.length;
  }

  /** p50 / p99 / max (all 0 when empty). */
  summary(): LatencySummary {
    return summarize(this.#values);
  }
}

/** p50 / p99 / max of `values` (ms). */
export function summarize(values: readonly number[]): LatencySummary {
  if (values.length === 0) return { count: 0, p50: 0, p99: 0, max: 0 };
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p: number) =>
    sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!;
  return { count: sorted.length, p50: rank(0.5), p99: rank(0.99), max: sorted.at(-1)! };
}

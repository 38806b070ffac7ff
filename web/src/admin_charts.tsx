/**
 * The operator page's charts: rate and latency from two cumulative push histograms, and a light
 * SVG line chart (no chart library: the page stays light).
 *
 * @module
 */

/** Cumulative push counts and latency (seconds) at a moment, as `/admin/stats` reports them. */
export interface PushTotals {
  at: number;
  pushes: { count: number; sum: number; bounds: number[]; buckets: number[] };
}

/** One point of the charts: over the interval that ended at `at`. */
export interface Sample {
  at: number;
  pushesPerSecond: number;
  /** Mean and 90th percentile of push → result (ms), or null without pushes. */
  meanMs: number | null;
  p90Ms: number | null;
}

/** Samples kept: five minutes at the page's poll. */
export const KEEP_SAMPLES = 150;

/** Rate and latency between two cumulative readings. */
export function sampleBetween(before: PushTotals, after: PushTotals): Sample {
  const count = after.pushes.count - before.pushes.count;
  const seconds = Math.max(0.001, (after.at - before.at) / 1000);
  if (count <= 0) return { at: after.at, pushesPerSecond: 0, meanMs: null, p90Ms: null };
  const meanMs = (after.pushes.sum - before.pushes.sum) / count * 1000;
  // The first bucket holding 90 % of the interval's pushes (cumulative buckets, `le` bounds).
  const target = count * 0.9;
  const index = after.pushes.buckets.findIndex((value, i) =>
    value - (before.pushes.buckets[i] ?? 0) >= target
  );
  const bound = index === -1 ? null : after.pushes.bounds[index]!;
  return {
    at: after.at,
    pushesPerSecond: count / seconds,
    meanMs,
    p90Ms: bound === null ? null : bound * 1000,
  };
}

/** A line chart in SVG, the newest sample at the right edge. */
export function Chart(
  { title, samples, series }: {
    title: string;
    samples: Sample[];
    series: { value: (sample: Sample) => number | null; color: string }[];
  },
) {
  const width = 360;
  const height = 120;
  const values = samples.flatMap((sample) => series.map((s) => s.value(sample) ?? 0));
  const max = Math.max(1, ...values);
  // The newest sample at the right edge; five minutes across.
  const x = (i: number) => width - (samples.length - 1 - i) * (width / (KEEP_SAMPLES - 1));
  const y = (value: number) => height - (value / max) * (height - 4) - 2;
  return (
    <figure className="chart">
      <figcaption>
        {title} <span className="muted">(max {max.toFixed(max < 10 ? 1 : 0)})</span>
      </figcaption>
      <svg width={width} height={height} viewBox={`0 0 ${width} ${height}`} role="img">
        <rect x={0} y={0} width={width} height={height} fill="#f8fafc" stroke="#ddd" />
        {series.map((s, n) => (
          <polyline
            key={n}
            fill="none"
            stroke={s.color}
            strokeWidth={1.5}
            points={samples.map((sample, i) => `${x(i)},${y(s.value(sample) ?? 0)}`).join(" ")}
          />
        ))}
      </svg>
    </figure>
  );
}

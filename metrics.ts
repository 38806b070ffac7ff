/**
 * A small metrics registry with Prometheus text exposition: counters, gauges and histograms with
 * labels. One registry per isolate; `GET /metrics` renders it. Label values are kept few (ids never go
 * in labels: rooms and users are unbounded).
 *
 * @module
 */

/** Label names to values. */
export type Labels = Record<string, string>;

interface Series<T> {
  labels: Labels;
  value: T;
}

function labelKey(labels: Labels): string {
  return Object.keys(labels).sort().map((key) => `${key}=${labels[key]}`).join(",");
}

function escapeLabelValue(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll("\n", "\\n").replaceAll('"', '\\"');
}

function renderLabels(labels: Labels, extra: Labels = {}): string {
  const all = { ...labels, ...extra };
  const keys = Object.keys(all);
  if (keys.length === 0) return "";
  return `{${keys.map((key) => `${key}="${escapeLabelValue(all[key]!)}"`).join(",")}}`;
}

function formatNumber(value: number): string {
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return Number.isInteger(value) ? String(value) : value.toPrecision(6).replace(/\.?0+$/, "");
}

abstract class Metric<T> {
  readonly #series = new Map<string, Series<T>>();
  constructor(readonly name: string, readonly help: string, readonly type: string) {}

  protected series(labels: Labels, initial: () => T): Series<T> {
    const key = labelKey(labels);
    let series = this.#series.get(key);
    if (!series) {
      series = { labels: { ...labels }, value: initial() };
      this.#series.set(key, series);
    }
    return series;
  }

  protected all(): Series<T>[] {
    return [...this.#series.values()];
  }

  /** Prometheus text lines for this metric. */
  render(): string[] {
    return [
      `# HELP ${this.name} ${this.help}`,
      `# TYPE ${this.name} ${this.type}`,
      ...this.lines(),
    ];
  }

  protected abstract lines(): string[];
}

/** A monotonically increasing count. */
export class Counter extends Metric<number> {
  constructor(name: string, help: string) {
    super(name, help, "counter");
  }
  /** Adds `amount` (default 1). */
  inc(labels: Labels = {}, amount = 1): void {
    this.series(labels, () => 0).value += amount;
  }
  /** Current value (tests). */
  get(labels: Labels = {}): number {
    return this.series(labels, () => 0).value;
  }
  protected lines(): string[] {
    return this.all().map((s) => `${this.name}${renderLabels(s.labels)} ${formatNumber(s.value)}`);
  }
}

/** A value that goes up and down; may be computed at render time. */
export class Gauge extends Metric<number> {
  #collect: (() => Iterable<[Labels, number]>) | undefined;
  constructor(name: string, help: string, collect?: () => Iterable<[Labels, number]>) {
    super(name, help, "gauge");
    this.#collect = collect;
  }
  set(labels: Labels, value: number): void {
    this.series(labels, () => 0).value = value;
  }
  inc(labels: Labels = {}, amount = 1): void {
    this.series(labels, () => 0).value += amount;
  }
  dec(labels: Labels = {}, amount = 1): void {
    this.series(labels, () => 0).value -= amount;
  }
  get(labels: Labels = {}): number {
    return this.series(labels, () => 0).value;
  }
  protected lines(): string[] {
    if (this.#collect) {
      for (const [labels, value] of this.#collect()) this.set(labels, value);
    }
    return this.all().map((s) => `${this.name}${renderLabels(s.labels)} ${formatNumber(s.value)}`);
  }
}

interface HistogramValue {
  buckets: number[];
  sum: number;
  count: number;
}

/** Observations counted into cumulative buckets (e.g. latencies in seconds). */
export class Histogram extends Metric<HistogramValue> {
  readonly bounds: readonly number[];
  constructor(name: string, help: string, bounds: readonly number[]) {
    super(name, help, "histogram");
    this.bounds = [...bounds].sort((a, b) => a - b);
  }
  observe(value: number, labels: Labels = {}): void {
    const series = this.series(labels, () => ({
      buckets: this.bounds.map(() => 0),
      sum: 0,
      count: 0,
    }));
    for (let i = 0; i < this.bounds.length; i++) {
      if (value <= this.bounds[i]!) series.value.buckets[i]!++;
    }
    series.value.sum += value;
    series.value.count++;
  }
  /** Number of observations (tests). */
  count(labels: Labels = {}): number {
    return this.series(labels, () => ({ buckets: [], sum: 0, count: 0 })).value.count;
  }
  protected lines(): string[] {
    return this.all().flatMap(({ labels, value }) => [
      ...this.bounds.map((bound, i) =>
        `${this.name}_bucket${renderLabels(labels, { le: formatNumber(bound) })} ${
          value.buckets[i]
        }`
      ),
      `${this.name}_bucket${renderLabels(labels, { le: "+Inf" })} ${value.count}`,
      `${this.name}_sum${renderLabels(labels)} ${formatNumber(value.sum)}`,
      `${this.name}_count${renderLabels(labels)} ${value.count}`,
    ]);
  }
}

/** Latency buckets in seconds, 1 ms to 10 s. */
export const LATENCY_BUCKETS = [
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  10,
];

/** The metrics of one isolate. */
export class MetricsRegistry {
  readonly #metrics = new Map<string, Metric<unknown>>();

  #register<M extends Metric<unknown>>(metric: M): M {
    const existing = this.#metrics.get(metric.name);
    if (existing) {
      if (existing.type !== metric.type) {
        throw new Error(`metric ${metric.name} already registered as a ${existing.type}`);
      }
      return existing as M;
    }
    this.#metrics.set(metric.name, metric);
    return metric;
  }

  /** Gets or creates a counter. */
  counter(name: string, help: string): Counter {
    return this.#register(new Counter(name, help));
  }
  /** Gets or creates a gauge; `collect` computes its series at render time. */
  gauge(name: string, help: string, collect?: () => Iterable<[Labels, number]>): Gauge {
    return this.#register(new Gauge(name, help, collect));
  }
  /** Gets or creates a histogram. */
  histogram(name: string, help: string, bounds: readonly number[] = LATENCY_BUCKETS): Histogram {
    return this.#register(new Histogram(name, help, bounds));
  }

  /** The Prometheus text exposition (format 0.0.4). */
  render(): string {
    return [...this.#metrics.values()].flatMap((metric) => metric.render()).join("\n") + "\n";
  }
}

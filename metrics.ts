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
  /** The series of `labels`, looked up once: for hot paths (no label key built per increment). */
  with(labels: Labels): { inc(amount?: number): void } {
    const series = this.series(labels, () => 0);
    return {
      inc: (amount = 1) => {
        series.value += amount;
      },
    };
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
    this.#add(this.#seriesOf(labels), value);
  }
  /** The series of `labels`, looked up once: for hot paths (no label key built per observation). */
  with(labels: Labels): { observe(value: number): void } {
    const series = this.#seriesOf(labels);
    return { observe: (value) => this.#add(series, value) };
  }
  #seriesOf(labels: Labels): Series<HistogramValue> {
    return this.series(labels, () => ({
      buckets: this.bounds.map(() => 0),
      sum: 0,
      count: 0,
    }));
  }
  #add(series: Series<HistogramValue>, value: number): void {
    for (let i = 0; i < this.bounds.length; i++) {
      if (value <= this.bounds[i]!) series.value.buckets[i]!++;
    }
    series.value.sum += value;
    series.value.count++;
  }
  /** Every series added up (the operator page charts rates and latencies of all actions). */
  merged(): HistogramValue {
    const total: HistogramValue = { buckets: this.bounds.map(() => 0), sum: 0, count: 0 };
    for (const { value } of this.all()) {
      value.buckets.forEach((count, i) => total.buckets[i]! += count);
      total.sum += value.sum;
      total.count += value.count;
    }
    return total;
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

/** Event-loop delay buckets in seconds, 2 ms to 2 s. */
export const EVENT_LOOP_DELAY_BUCKETS = [0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2];

/** KV commit buckets in seconds, 0.5 ms (a local file) to 2 s. */
export const KV_COMMIT_BUCKETS = [
  0.0005,
  0.001,
  0.002,
  0.005,
  0.01,
  0.02,
  0.05,
  0.1,
  0.2,
  0.5,
  2,
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

/** The WebSocket channels of the server (a label value of the `sync_*` metrics). */
export type SyncChannel = "tldraw" | "user" | "livestore";

/** Every {@link SyncChannel}. */
export const SYNC_CHANNELS: readonly SyncChannel[] = ["tldraw", "user", "livestore"];

/**
 * The sync engines' metrics, registered once per registry (names, help texts and labels in one
 * place; docs/operations.md lists them). Labels are fixed small sets: channel, direction, action,
 * close reason, bus topic kind, rate-limit name — never room, user or session ids.
 */
export interface ServerMetrics {
  /** `sync_sessions{channel}`: WebSockets of each channel open on this isolate. */
  sessions: Gauge;
  /** `sync_messages_total{direction,channel}`: WebSocket messages received (`in`) and sent. */
  messages: Counter;
  /** `sync_bytes_total{direction,channel}`: their payload bytes (UTF-8 for text frames). */
  bytes: Counter;
  /** `sync_rejects_total{channel,code}`: sessions the server closed as refused (4099 + reason). */
  rejects: Counter;
  /** `tldraw_push_duration_seconds{action}`: push received → its push_result handed to the socket. */
  pushDuration: Histogram;
  /** `tldraw_commit_conflicts_total`: room commits that lost the clock race to another isolate. */
  commitConflicts: Counter;
  /**
   * `tldraw_forward_fallbacks_total`: pushes this isolate forwarded to a room's writer that got no
   * answer in time (or could not go), and were committed here instead.
   */
  forwardFallbacks: Counter;
  /** `kv_locked_retries_total`: room-store operations retried because the KV file was locked. */
  lockedRetries: Counter;
  /** `kv_operations_total{kind}`: KV reads (`get`, `get_many`, `list`) and writes (`commit`). */
  kvOperations: Counter;
  /** `kv_commit_duration_seconds`: one KV atomic commit, issued to settled. */
  kvCommitDuration: Histogram;
  /** `bus_notices_total{direction,kind}`: cross-isolate bus messages published and delivered. */
  busNotices: Counter;
  /** `bus_notices_late_total`: room clock notices that arrived after the room had caught up. */
  busNoticesLate: Counter;
  /** `rate_limit_hits_total{limit}`: requests or messages refused by a rate limit. */
  rateLimitHits: Counter;
  /** `user_mutation_rejects_total{code}`: user-data mutations answered `reject`, by error code. */
  mutationRejects: Counter;
  /** `debug_tail_dropped_total`: log lines a slow debug-tail client did not get. */
  debugTailDropped: Counter;
  /** `event_loop_delay_seconds`: how late the isolate's event loop runs (event_loop_delay.ts). */
  eventLoopDelay: Histogram;
  /**
   * `zero_mutations_total{outcome}`: Zero mutations pushed by zero-cache, by outcome (`ok`,
   * `app_error`, `already_processed`, `push_failed`).
   */
  zeroMutations: Counter;
  /** `zero_push_duration_seconds`: one `POST /app/zero/push`, from its body to its answer. */
  zeroPushDuration: Histogram;
}

/**
 * A KV meter (see sync/metered_kv.ts) counting into `kv_operations_total{kind}` and timing commits
 * into `kv_commit_duration_seconds`.
 */
export function kvMeter(
  registry: MetricsRegistry,
): { started(kind: string): void; committed(seconds: number): void } {
  const metrics = serverMetrics(registry);
  const byKind = new Map<string, { inc(amount?: number): void }>();
  const commits = metrics.kvCommitDuration.with({});
  return {
    started(kind) {
      let counter = byKind.get(kind);
      if (!counter) byKind.set(kind, counter = metrics.kvOperations.with({ kind }));
      counter.inc();
    },
    committed(seconds) {
      commits.observe(seconds);
    },
  };
}

/** A rate-limit observer counting into `rate_limit_hits_total{limit}` (none without a registry). */
export function rateLimitCounter(
  registry: MetricsRegistry | undefined,
): ((limit: string) => void) | undefined {
  if (!registry) return undefined;
  const hits = serverMetrics(registry).rateLimitHits;
  return (limit) => hits.inc({ limit });
}

/** A mutation-reject observer counting into `user_mutation_rejects_total{code}`. */
export function mutationRejectCounter(
  registry: MetricsRegistry | undefined,
): ((code: string) => void) | undefined {
  if (!registry) return undefined;
  const rejects = serverMetrics(registry).mutationRejects;
  return (code) => rejects.inc({ code });
}

const serverMetricsByRegistry = new WeakMap<MetricsRegistry, ServerMetrics>();

/** The engine metrics in `registry` (created on first use; the same object afterwards). */
export function serverMetrics(registry: MetricsRegistry): ServerMetrics {
  let metrics = serverMetricsByRegistry.get(registry);
  if (metrics) return metrics;
  metrics = {
    sessions: registry.gauge(
      "sync_sessions",
      "WebSocket sessions open on this isolate, by channel",
    ),
    messages: registry.counter(
      "sync_messages_total",
      "WebSocket messages received (in) and sent (out), by channel",
    ),
    bytes: registry.counter(
      "sync_bytes_total",
      "WebSocket message payload bytes received (in) and sent (out), by channel",
    ),
    rejects: registry.counter(
      "sync_rejects_total",
      "Sessions refused or closed by the server with a reason (close 4099), by channel and reason",
    ),
    pushDuration: registry.histogram(
      "tldraw_push_duration_seconds",
      "tldraw push received to its push_result handed to the socket, by action",
    ),
    commitConflicts: registry.counter(
      "tldraw_commit_conflicts_total",
      "Room commits that lost the clock race (another isolate committed first)",
    ),
    forwardFallbacks: registry.counter(
      "tldraw_forward_fallbacks_total",
      "Pushes forwarded to a room's writer that were committed here instead (no answer in time)",
    ),
    lockedRetries: registry.counter(
      "kv_locked_retries_total",
      "Room-store operations retried because the local KV file was locked",
    ),
    kvOperations: registry.counter(
      "kv_operations_total",
      "KV operations started by this isolate, by kind (get, get_many, list, commit)",
    ),
    kvCommitDuration: registry.histogram(
      "kv_commit_duration_seconds",
      "KV atomic commits of this isolate, issued to settled (committed, check failed or thrown)",
      KV_COMMIT_BUCKETS,
    ),
    busNotices: registry.counter(
      "bus_notices_total",
      "Cross-isolate bus messages sent and received, by direction and topic kind",
    ),
    busNoticesLate: registry.counter(
      "bus_notices_late_total",
      "Room clock notices received after the room had already caught up to that clock",
    ),
    mutationRejects: registry.counter(
      "user_mutation_rejects_total",
      "User-data mutations rejected, by error code",
    ),
    rateLimitHits: registry.counter(
      "rate_limit_hits_total",
      "Requests, joins or messages refused by a rate limit, by limit",
    ),
    zeroMutations: registry.counter(
      "zero_mutations_total",
      "Zero mutations pushed by zero-cache, by outcome",
    ),
    zeroPushDuration: registry.histogram(
      "zero_push_duration_seconds",
      "One Zero push request (POST /app/zero/push), body to answer",
    ),
    debugTailDropped: registry.counter(
      "debug_tail_dropped_total",
      "Log lines not delivered to a slow debug-tail client",
    ),
    eventLoopDelay: registry.histogram(
      "event_loop_delay_seconds",
      "How late this isolate's event loop ran a timer due every 25 ms (GC pauses, long tasks, CPU)",
      EVENT_LOOP_DELAY_BUCKETS,
    ),
  };
  for (const channel of SYNC_CHANNELS) {
    metrics.sessions.set({ channel }, 0);
    for (const direction of ["in", "out"]) {
      metrics.messages.inc({ direction, channel }, 0);
      metrics.bytes.inc({ direction, channel }, 0);
    }
  }
  metrics.commitConflicts.inc({}, 0);
  metrics.lockedRetries.inc({}, 0);
  metrics.busNoticesLate.inc({}, 0);
  serverMetricsByRegistry.set(registry, metrics);
  return metrics;
}

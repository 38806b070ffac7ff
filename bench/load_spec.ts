/**
 * What the benchmark asks of a load-generator process (`load_client.ts`) and what it reports back.
 * Both travel as JSON: the spec as the process's single argument, reports as lines on its stdout.
 *
 * @module
 */

/** Steady load: every client pushes at `rate`/s for `seconds` after a `warmupSeconds` warm-up. */
export interface SteadySpec {
  kind: "steady";
  url: string;
  roomPrefix: string;
  rooms: number;
  clientsPerRoom: number;
  /** Pushes per second per client. */
  rate: number;
  /** `doc`: shape updates (and every `createEvery`th push a create); `presence`: cursor patches. */
  mode: "doc" | "presence";
  createEvery: number;
  warmupSeconds: number;
  seconds: number;
  /** After sending stops, how long to wait for outstanding results and fan-outs. */
  drainSeconds: number;
}

/**
 * Saturation: one room; the per-client rate is multiplied by `factor` each step until a step fails
 * (see {@link stepSustained}); the first failure is re-run once, so one noisy step does not end it.
 */
export interface SaturationSpec {
  kind: "saturation";
  url: string;
  roomPrefix: string;
  clientsPerRoom: number;
  startRate: number;
  factor: number;
  maxSteps: number;
  warmupSeconds: number;
  stepSeconds: number;
  drainSeconds: number;
  /** A step fails when its fan-out p99 exceeds this (ms), or anything is lost. */
  limitMs: number;
  createEvery: number;
  /**
   * After the ramp failed, this many rates evenly spaced (geometrically) between the last one
   * sustained and the failed one are tried, up to the first failure: `factor` alone measures
   * throughput in steps of `factor` (1.3×), too coarse to compare two servers.
   */
  refineSteps: number;
}

/** Fills rooms with `shapes` shapes each, `perPush` per push, then disconnects. */
export interface SeedSpec {
  kind: "seed";
  url: string;
  roomIds: string[];
  shapes: number;
  perPush: number;
}

/**
 * Joins each (unloaded) room with one client, one room after another, timing `connect` → reply; then
 * marks `joined` (the benchmark reads memory while they stay connected) and times a warm join.
 */
export interface JoinSpec {
  kind: "join";
  url: string;
  roomIds: string[];
}

/**
 * Many small idle rooms: joins `clientsPerRoom` clients into each room, the first puts `shapes`
 * shapes; marks `idle` (the benchmark reads memory while they stay connected, pinging); closes
 * them all, waits `unloadSeconds` for the server to drop the rooms, and marks `left`.
 */
export interface IdleSpec {
  kind: "idle";
  url: string;
  roomIds: string[];
  clientsPerRoom: number;
  shapes: number;
  unloadSeconds: number;
}

/** Any load-generator task. */
export type LoadSpec = SteadySpec | SaturationSpec | SeedSpec | JoinSpec | IdleSpec;

/** p50 / p99 / max of a latency sample (ms); `count` samples. */
export interface LatencySummary {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

/** One measured load phase. */
export interface PhaseResult {
  /** Pushes per second per client asked for, and total pushes/s offered and actually sent. */
  rate: number;
  offeredPerSec: number;
  sentPerSec: number;
  seconds: number;
  /** push → its push_result, at the pusher. */
  ack: LatencySummary;
  /** push → the last peer in the room received it. */
  fanout: LatencySummary;
  /** Pushes delivered to peers (one per push per peer) per second of the phase. */
  deliveredPerSec: number;
  /** WebSocket frames received by all clients per second. */
  framesPerSec: number;
  /** push_results that were not `commit`. */
  rebases: number;
  discards: number;
  /** Pushes of the phase still without a push_result or a complete fan-out after draining. */
  lostAcks: number;
  lostFanouts: number;
  /** Load generator CPU, % of one core (if near 100 the generator, not the server, limits). */
  clientCpuPercent: number;
}

/** What a load-generator process prints last. */
export interface LoadResult {
  phases: PhaseResult[];
  /** Cold / warm join times (ms): `connect` sent → `connect` reply received. */
  coldJoin?: LatencySummary;
  warmJoin?: LatencySummary;
  /** Size of one join reply (characters) and records it carried. */
  joinReplyChars?: number;
  joinRecords?: number;
  /** Seeding: seconds it took. */
  seedSeconds?: number;
  /** Socket errors, unexpected closes, rejected connects. */
  errors: number;
  errorNotes: string[];
}

/** A line on the load generator's stdout. */
export type LoadReport =
  | { mark: string }
  | { result: LoadResult };

/**
 * Whether a saturation step was sustained: fan-out p99 within `limitMs`, nothing lost, and the
 * generator managed to send at least 90% of the offered rate.
 */
export function stepSustained(phase: PhaseResult, limitMs: number): boolean {
  return phase.fanout.count > 0 && phase.fanout.p99 <= limitMs && phase.lostAcks === 0 &&
    phase.lostFanouts === 0 && phase.sentPerSec >= 0.9 * phase.offeredPerSec;
}

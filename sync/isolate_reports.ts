/**
 * What each isolate serves, for the operator page: every isolate writes its report (sockets, rooms
 * with their clocks and sessions, cumulative push latency) to KV every few seconds with an expiry,
 * so any isolate can list them all. KV rather than the bus: a report must reach an isolate that
 * asks later, and KV is what every isolate of a deployment shares (the bus may drop messages).
 *
 * @module
 */
import type { Logger } from "../log.ts";

/** A session as the operator page shows it. */
export interface ReportedSession {
  sessionId: string;
  state: string;
  isReadonly: boolean;
}

/** A room loaded on an isolate. */
export interface ReportedRoom {
  roomId: string;
  clock: number;
  sessions: ReportedSession[];
}

/** Push received → its result sent, cumulative since the isolate started (seconds). */
export interface ReportedPushes {
  count: number;
  sum: number;
  bounds: readonly number[];
  buckets: number[];
}

/** One isolate's report. */
export interface IsolateReport {
  isolate: string;
  /** When it was taken (epoch ms). */
  at: number;
  openSockets: number;
  roomsLoaded: number;
  sessions: number;
  pushes: ReportedPushes;
  /** The rooms with the most sessions, at most {@link MAX_REPORTED_ROOMS}. */
  rooms: ReportedRoom[];
}

/** Rooms listed per report: keeps a report far below KV's 64 KiB value limit. */
export const MAX_REPORTED_ROOMS = 100;
/** Sessions listed per room in a report. */
export const MAX_REPORTED_SESSIONS = 20;
/** How often an isolate writes its report, by default. */
export const REPORT_INTERVAL_MS = 5_000;

const PREFIX = ["isolate_report"] as const;

/** Keeps the rooms with the most sessions and at most a few sessions of each. */
export function trimRooms(rooms: ReportedRoom[]): ReportedRoom[] {
  return [...rooms].sort((a, b) => b.sessions.length - a.sessions.length)
    .slice(0, MAX_REPORTED_ROOMS)
    .map((room) => ({ ...room, sessions: room.sessions.slice(0, MAX_REPORTED_SESSIONS) }));
}

/** Writes this isolate's report periodically and reads everyone's. */
export class IsolateReports {
  readonly #kv: Deno.Kv;
  readonly #take: () => IsolateReport;
  readonly #intervalMs: number;
  readonly #log: Logger;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #writing: Promise<void> | undefined;
  #stopped = false;

  constructor(options: {
    kv: Deno.Kv;
    /** Takes this isolate's report now. */
    take: () => IsolateReport;
    intervalMs?: number;
    log: Logger;
  }) {
    this.#kv = options.kv;
    this.#take = options.take;
    this.#intervalMs = options.intervalMs ?? REPORT_INTERVAL_MS;
    this.#log = options.log.child({ component: "isolate_reports" });
  }

  /** Writes a report now and then every interval until {@link stop}. */
  start(): void {
    if (this.#timer !== undefined || this.#stopped) return;
    const tick = () => {
      this.#writing = this.#write().finally(() => {
        this.#writing = undefined;
        if (!this.#stopped) this.#timer = setTimeout(tick, this.#intervalMs);
      });
    };
    tick();
  }

  /** Stops writing and removes this isolate's report (it serves nothing any more). */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#writing;
    const isolate = this.#take().isolate;
    await this.#kv.delete([...PREFIX, isolate]).catch(() => {});
  }

  /** Every live report, this isolate's taken now; by isolate id. */
  async list(): Promise<IsolateReport[]> {
    const own = this.#take();
    const now = Date.now();
    const reports = [own];
    for await (const entry of this.#kv.list<IsolateReport>({ prefix: PREFIX })) {
      const report = entry.value;
      // expireIn deletes lazily: an isolate that died without a stop is dropped by its age.
      if (report.isolate === own.isolate || now - report.at > this.#maxAgeMs) continue;
      reports.push(report);
    }
    return reports.sort((a, b) => a.isolate.localeCompare(b.isolate));
  }

  get #maxAgeMs(): number {
    return this.#intervalMs * 3;
  }

  async #write(): Promise<void> {
    const report = this.#take();
    try {
      await this.#kv.set([...PREFIX, report.isolate], report, { expireIn: this.#maxAgeMs });
    } catch (error) {
      this.#log.warn("isolate report write failed", { error });
    }
  }
}

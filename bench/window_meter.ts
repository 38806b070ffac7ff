/**
 * Server-side measurements of one load window: the load generator marks the window's edges and the
 * benchmark reads the server process's CPU (whole process and JavaScript thread) and RSS right there.
 *
 * @module
 */
import type { LoadResult, PhaseResult } from "./load_spec.ts";
import { machineLoad } from "./proc_stats.ts";
import type { ServerProcess } from "./server_process.ts";

/** One server's measurement of one load phase. */
export interface Measured {
  phase: PhaseResult;
  /** The whole server process (all threads), % of one core over the window. */
  cpuPercent: number;
  /** The JavaScript thread alone (% of one core). */
  mainCpuPercent: number;
  /** Server RSS at the window's end. */
  rssBytes: number;
  /** Machine load average (1 min) at the window's end. */
  load1: number;
  /** Client-side errors plus pushes lost (no result or incomplete fan-out after draining). */
  errors: number;
  /** Lines the server wrote to stderr during the run. */
  serverLogLines: number;
  /** KV reads and commits per second over the window (servers exposing `kv_operations_total`). */
  kv?: KvRates | undefined;
}

/** KV operations per second over a window, and the event loop's and the KV's stalls in it. */
export interface KvRates {
  readsPerSec: number;
  commitsPerSec: number;
  /** Ticks of `event_loop_delay_seconds` later than 20 / 50 / 100 ms (event_loop_delay.ts). */
  loopStalls: [number, number, number];
  /** Commits (`kv_commit_duration_seconds`) that took longer than 20 / 50 / 100 ms. */
  slowCommits: [number, number, number];
  /**
   * Committed pushes whose result took the server longer than 5 / 10 / 25 ms from receipt
   * (`tldraw_push_duration_seconds`): the server's share of a latency tail, apart from the
   * network and the load generator.
   */
  slowPushes: [number, number, number];
}

/** A histogram's observations in all, and within each of three bounds. */
interface Tally {
  /** The `le` labels of the bounds, as the server prints them. */
  bounds: readonly [string, string, string];
  count: number;
  within: [number, number, number];
}

function tally(...bounds: [string, string, string]): Tally {
  return { bounds, count: 0, within: [0, 0, 0] };
}

/** The counters of our server's `/metrics` a window reads. */
interface ServerTotals {
  reads: number;
  commits: number;
  loop: Tally;
  commitTimes: Tally;
  pushTimes: Tally;
}

/**
 * Reads `line` into `tally` if it is a bucket or the count of histogram `name` with exactly the
 * labels `labels` (e.g. `action="commit"`; none if empty).
 */
function tallyLine(name: string, labels: string, line: string, tally: Tally): void {
  if (!line.startsWith(name)) return;
  const prefix = labels ? `${labels},` : "";
  const bucket = new RegExp(`^${name}_bucket\\{${prefix}le="([\\d.]+)"\\} (\\d+)`).exec(line);
  const at = bucket ? tally.bounds.indexOf(bucket[1]!) : -1;
  if (at >= 0) tally.within[at] = Number(bucket![2]);
  const count = new RegExp(`^${name}_count${labels ? `\\{${labels}\\}` : ""} (\\d+)`).exec(line);
  if (count) tally.count = Number(count[1]);
}

/** Observations of `before`…`after` beyond each bound. */
function beyond(before: Tally, after: Tally): [number, number, number] {
  return before.within.map((within, i) =>
    (after.count - before.count) - (after.within[i]! - within)
  ) as [number, number, number];
}

/** `kv_operations_total` of the server now, or undefined when it has no such metric. */
async function kvTotals(server: ServerProcess): Promise<ServerTotals | undefined> {
  try {
    const response = await fetch(`http://127.0.0.1:${server.port}/metrics`);
    if (!response.ok) {
      await response.body?.cancel();
      return undefined;
    }
    const totals: ServerTotals = {
      reads: 0,
      commits: 0,
      loop: tally("0.02", "0.05", "0.1"),
      commitTimes: tally("0.02", "0.05", "0.1"),
      pushTimes: tally("0.005", "0.01", "0.025"),
    };
    let found = false;
    for (const line of (await response.text()).split("\n")) {
      tallyLine("event_loop_delay_seconds", "", line, totals.loop);
      tallyLine("kv_commit_duration_seconds", "", line, totals.commitTimes);
      tallyLine("tldraw_push_duration_seconds", 'action="commit"', line, totals.pushTimes);
      const match = /^kv_operations_total\{kind="(\w+)"\} (\d+)/.exec(line);
      if (!match) continue;
      found = true;
      if (match[1] === "commit") totals.commits += Number(match[2]);
      else totals.reads += Number(match[2]);
    }
    return found ? totals : undefined;
  } catch {
    return undefined;
  }
}

/** Reads server CPU at a window's start mark and CPU / RSS at its end mark. */
export class WindowMeter {
  readonly windows = new Map<
    string,
    {
      cpuPercent: number;
      mainCpuPercent: number;
      rssBytes: number;
      load1: number;
      kv: KvRates | undefined;
    }
  >();
  #started = new Map<
    string,
    { cpu: number; main: number; at: number; kv: ServerTotals | undefined }
  >();

  constructor(readonly server: ServerProcess) {}

  /** Pass to `runLoad`: reads the server at `start:<label>` / `end:<label>` marks. */
  onMark = async (mark: string): Promise<void> => {
    const [edge, label = ""] = mark.split(":");
    if (edge === "start") {
      const cpu = this.server.cpuSeconds();
      const main = this.server.mainThreadCpuSeconds();
      const at = performance.now();
      this.#started.set(label, { cpu, main, at, kv: await kvTotals(this.server) });
    } else if (edge === "end") {
      const start = this.#started.get(label);
      if (!start) return;
      const seconds = (performance.now() - start.at) / 1000;
      const cpuPercent = (100 * (this.server.cpuSeconds() - start.cpu)) / seconds;
      const mainCpuPercent = (100 * (this.server.mainThreadCpuSeconds() - start.main)) / seconds;
      const kv = start.kv && await kvTotals(this.server);
      this.windows.set(label, {
        cpuPercent,
        mainCpuPercent,
        rssBytes: this.server.rssBytes(),
        load1: machineLoad().load1,
        kv: start.kv && kv
          ? {
            readsPerSec: (kv.reads - start.kv.reads) / seconds,
            commitsPerSec: (kv.commits - start.kv.commits) / seconds,
            loopStalls: beyond(start.kv.loop, kv.loop),
            slowCommits: beyond(start.kv.commitTimes, kv.commitTimes),
            slowPushes: beyond(start.kv.pushTimes, kv.pushTimes),
          }
          : undefined,
      });
    }
  };
}

/** Combines a phase with the server readings of its window. */
export function measured(
  server: ServerProcess,
  meter: WindowMeter,
  label: string,
  phase: PhaseResult,
  result: LoadResult,
  logLinesBefore: number,
): Measured {
  const window = meter.windows.get(label) ??
    { cpuPercent: 0, mainCpuPercent: 0, rssBytes: 0, load1: 0, kv: undefined };
  return {
    phase,
    ...window,
    errors: result.errors + phase.lostAcks + phase.lostFanouts,
    serverLogLines: server.stderrLines - logLinesBefore,
  };
}

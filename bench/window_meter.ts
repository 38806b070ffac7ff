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
}

/** Reads server CPU at a window's start mark and CPU / RSS at its end mark. */
export class WindowMeter {
  readonly windows = new Map<
    string,
    { cpuPercent: number; mainCpuPercent: number; rssBytes: number; load1: number }
  >();
  #started = new Map<string, { cpu: number; main: number; at: number }>();

  constructor(readonly server: ServerProcess) {}

  /** Pass to `runLoad`: reads the server at `start:<label>` / `end:<label>` marks. */
  onMark = (mark: string): void => {
    const [edge, label = ""] = mark.split(":");
    if (edge === "start") {
      this.#started.set(label, {
        cpu: this.server.cpuSeconds(),
        main: this.server.mainThreadCpuSeconds(),
        at: performance.now(),
      });
    } else if (edge === "end") {
      const start = this.#started.get(label);
      if (!start) return;
      const seconds = (performance.now() - start.at) / 1000;
      this.windows.set(label, {
        cpuPercent: (100 * (this.server.cpuSeconds() - start.cpu)) / seconds,
        mainCpuPercent: (100 * (this.server.mainThreadCpuSeconds() - start.main)) / seconds,
        rssBytes: this.server.rssBytes(),
        load1: machineLoad().load1,
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
    { cpuPercent: 0, mainCpuPercent: 0, rssBytes: 0, load1: 0 };
  return {
    phase,
    ...window,
    errors: result.errors + phase.lostAcks + phase.lostFanouts,
    serverLogLines: server.stderrLines - logLinesBefore,
  };
}

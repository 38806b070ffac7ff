/**
 * Process CPU time and resident memory from Linux `/proc`, so a benchmark can measure a server running
 * in another process without instrumenting it.
 *
 * @module
 */

/** Clock ticks per second of `/proc/<pid>/stat` times (USER_HZ: 100 on every Linux Deno supports). */
const CLOCK_TICKS = 100;

/** CPU seconds (user + system, all threads) the process has used so far. */
export function cpuSeconds(pid: number | "self"): number {
  return statCpuSeconds(`/proc/${pid}/stat`);
}

/**
 * CPU seconds of the process's main thread only: for Deno, the JavaScript thread (WebSocket I/O,
 * KV/SQLite and GC helpers run on other threads). A main thread far below 100% while latency grows
 * means the server waits (e.g. on storage) rather than computes.
 */
export function mainThreadCpuSeconds(pid: number): number {
  return statCpuSeconds(`/proc/${pid}/task/${pid}/stat`);
}

/**
 * CPU seconds per thread name of process `pid` (threads of one name summed), to see where a
 * server's CPU goes. Deno names its threads: `deno` (the main JavaScript thread), `worker-N` (Web
 * Workers, in creation order), `sw-0` (one SQLite thread per open KV handle), `V8 DefaultWorke`
 * (V8's GC and compiler helpers), `tokio-runtime-w` (blocking I/O). A thread that ended between
 * two samples drops out of the later one.
 */
export function threadCpuSeconds(pid: number): Map<string, number> {
  const byName = new Map<string, number>();
  for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
    try {
      const name = Deno.readTextFileSync(`/proc/${pid}/task/${task.name}/comm`).trim();
      const seconds = statCpuSeconds(`/proc/${pid}/task/${task.name}/stat`);
      byName.set(name, (byName.get(name) ?? 0) + seconds);
    } catch {
      // The thread ended while we read it.
    }
  }
  return byName;
}

function statCpuSeconds(path: string): number {
  const stat = Deno.readTextFileSync(path);
  // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // After the name, field 3 (state) is index 0, so utime (14) and stime (15) are 11 and 12.
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** Resident set size in bytes (`VmRSS`). */
export function rssBytes(pid: number | "self"): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const match = status.match(/^VmRSS:\s+(\d+)\s+kB/m);
  return match ? Number(match[1]) * 1024 : 0;
}

/** The 1-minute load average and the number of CPUs, for the report header. */
export function machineLoad(): { load1: number; load5: number; cpus: number } {
  const [load1 = 0, load5 = 0] = Deno.loadavg();
  return { load1, load5, cpus: navigator.hardwareConcurrency };
}

/** A CPU stopwatch over another process: `stop()` gives its CPU use as % of one core. */
export class CpuMeter {
  readonly #pid: number | "self";
  readonly #cpu: number;
  readonly #wall: number;

  constructor(pid: number | "self") {
    this.#pid = pid;
    this.#cpu = cpuSeconds(pid);
    this.#wall = performance.now();
  }

  /** CPU seconds used and % of one core since construction. */
  stop(): { cpuSeconds: number; percent: number; seconds: number } {
    const used = cpuSeconds(this.#pid) - this.#cpu;
    const seconds = (performance.now() - this.#wall) / 1000;
    return { cpuSeconds: used, percent: seconds > 0 ? (100 * used) / seconds : 0, seconds };
  }
}

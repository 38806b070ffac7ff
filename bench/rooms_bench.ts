/**
 * tldraw rooms across isolates: `deno run -A bench/rooms_bench.ts [--seconds=N] [--runs=N]
 * [--cpu-prof=DIR] [--only=1x50-1,1x50-2,200x5-1,200x5-2,200x5-split]` (`--cpu-prof`: the server writes a V8 CPU
 * profile per thread into DIR, the isolates' as `*.worker-N.cpuprofile`; summarise them with
 * bench/cpu_profile_top.ts).
 *
 * Starts the real server as a separate process with two isolates (`main.ts --isolates 2`: two Web
 * Workers sharing the KV file and the bus) and drives it with raw WebSocket clients speaking the
 * tldraw sync protocol. Every client owns one shape and keeps moving it: it pushes, waits for its
 * `push_result`, pauses (think time), pushes again. The shape's `x` carries the send time, so every
 * patch a client receives gives one fan-out latency, sorted by whether sender and receiver are on
 * the same isolate or not.
 *
 * Scenarios, each once on a single isolate (every client on isolate 0) and once spread over both:
 * 1 room × 50 clients, and 200 rooms × 5 clients (saturation: no think time), the latter also with
 * each room's clients all on one isolate ("rooms split": no cross-isolate contention). Reported:
 * acknowledged pushes/s, delivered patches/s, fan-out p50/p99 (same-isolate and cross-isolate), the
 * server process's CPU and the load generator's CPU (this process), commits that lost the clock
 * race, forwarded pushes committed by their own isolate and KV reads and commits per acknowledged
 * push (from the isolates' `/metrics`), and the
 * latency the bus adds; then the server's CPU by thread (each isolate's JavaScript thread, KV's SQLite threads, the supervisor's
 * main thread, V8's helpers) and the machine's idle share, to show where the CPU goes; last, the
 * CPU ceiling of each many-room run on two isolates: the machine's cores divided by the CPU one
 * acknowledged push cost (the load generator runs on the same cores), compared with the single
 * isolate's throughput.
 *
 * With `--runs=N` the scenarios are measured N times over (the servers stay up), and a last table
 * gives issue 17's efficiency targets: server CPU per acknowledged push on two isolates against one,
 * per run, with the median and range over the runs (single runs of 8 s swing by a third here).
 *
 * Before and after a change, in one run: with `BENCH_BASELINE_DIR=<dir>` (a checkout of the earlier
 * code, e.g. `git worktree add /tmp/base <commit>`) its server runs every scenario too, alternating
 * which goes first, and the tables have a row for each (`server`: ours / baseline).
 *
 * @module
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { createTLSchema } from "@tldraw/tlschema";
import { threadCpuSeconds } from "./proc_stats.ts";
import { geoShape } from "./tldraw_records.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    seconds: { type: "string", default: "8" },
    /** Times every scenario is measured (medians and ranges in the last table). */
    runs: { type: "string", default: "1" },
    "cpu-prof": { type: "string", default: "" },
    /** Comma list of runs (all by default): 1x50-1, 1x50-2, 200x5-1, 200x5-2, 200x5-split. */
    only: { type: "string", default: "" },
  },
});
const SECONDS = Number(values.seconds);
const RUNS = Math.max(1, Number(values.runs));
const WARMUP_MS = 2_000;
const ROOT = new URL("../", import.meta.url);
const SCHEMA = createTLSchema().serialize();

// deno-lint-ignore no-explicit-any
type Frame = Record<string, any>;

/** Measurements shared by the clients of one run. */
class Stats {
  measuring = false;
  acked = 0;
  delivered = 0;
  same: number[] = [];
  cross: number[] = [];
  errors = 0;
}

function shape(id: string, x: number): Record<string, unknown> {
  return geoShape(id, x, 0);
}

/** One raw protocol client that keeps moving its own shape. */
class BenchClient {
  readonly #ws: WebSocket;
  readonly #shapeId: string;
  readonly #stats: Stats;
  readonly #thinkMs: number;
  #clientClock = 0;
  #running = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  readonly connected: Promise<void>;
  readonly closed: Promise<void>;

  constructor(
    url: string,
    readonly isolate: number,
    index: number,
    stats: Stats,
    thinkMs: number,
  ) {
    this.#shapeId = `shape:b${index}i${isolate}`;
    this.#stats = stats;
    this.#thinkMs = thinkMs;
    this.#ws = new WebSocket(url);
    this.closed = new Promise((resolve) => this.#ws.addEventListener("close", () => resolve()));
    this.connected = new Promise((resolve, reject) => {
      this.#ws.addEventListener("error", () => reject(new Error("socket error")), { once: true });
      this.#ws.addEventListener("open", () => {
        this.#ws.send(JSON.stringify({
          type: "connect",
          connectRequestId: crypto.randomUUID(),
          lastServerClock: -1,
          protocolVersion: 8,
          schema: SCHEMA,
        }));
      });
      this.#ws.addEventListener("message", (event) => {
        const frame: Frame = JSON.parse(String(event.data));
        if (frame.type === "connect") {
          resolve();
          // Create the shape this client will move.
          this.#send({ [this.#shapeId]: ["put", shape(this.#shapeId, performance.now())] });
        } else if (frame.type === "data") {
          for (const e of frame.data) this.#onEvent(e);
        } else if (frame.type === "patch" || frame.type === "push_result") this.#onEvent(frame);
      });
    });
    this.connected.catch(() => {});
  }

  #onEvent(event: Frame): void {
    const stats = this.#stats;
    if (event.type === "push_result") {
      if (stats.measuring) stats.acked++;
      if (this.#running) {
        if (this.#thinkMs > 0) this.#timer = setTimeout(() => this.#move(), this.#thinkMs);
        else this.#move();
      }
      return;
    }
    const now = performance.now();
    for (const [id, op] of Object.entries(event.diff as Record<string, Frame>)) {
      if (!id.startsWith("shape:b")) continue;
      const x = op[0] === "put" ? op[1].x : op[0] === "patch" ? op[1].x?.[1] : undefined;
      if (typeof x !== "number") continue;
      if (!stats.measuring) continue;
      stats.delivered++;
      const from = Number(id.slice(id.lastIndexOf("i") + 1));
      (from === this.isolate ? stats.same : stats.cross).push(now - x);
    }
  }

  #send(diff: Record<string, unknown>): void {
    if (this.#ws.readyState !== WebSocket.OPEN) return;
    this.#ws.send(JSON.stringify({ type: "push", clientClock: this.#clientClock++, diff }));
  }

  #move(): void {
    this.#timer = undefined;
    this.#send({ [this.#shapeId]: ["patch", { x: ["put", performance.now()] }] });
  }

  start(): void {
    this.#running = true;
    this.#move();
  }

  stop(): void {
    this.#running = false;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
  }

  close(): Promise<void> {
    this.stop();
    if (this.#ws.readyState <= WebSocket.OPEN) this.#ws.close();
    return this.closed;
  }
}

/** The server under test, as its own process. */
interface Server {
  pid: number;
  directPorts: number[];
  stop(): Promise<void>;
}

async function startServer(dataDir: string, root: URL): Promise<Server> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      ...(values["cpu-prof"] ? ["--cpu-prof", `--cpu-prof-dir=${values["cpu-prof"]}`] : []),
      "main.ts",
      "--isolates",
      "2",
    ],
    cwd: root,
    env: { PORT: "0", DATA_DIR: dataDir, LOG_LEVEL: "info" },
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const { promise, resolve, reject } = Promise.withResolvers<number[]>();
  const reading = (async () => {
    let buffer = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        try {
          const record = JSON.parse(line);
          if (record.msg === "isolates listening") resolve(record.directPorts);
        } catch {
          // not a log line
        }
      }
    }
    reject(new Error("server exited before listening"));
  })();
  const directPorts = await promise;
  return {
    pid: child.pid,
    directPorts,
    stop: async () => {
      child.kill("SIGINT");
      await Promise.all([child.status, reading]);
    },
  };
}

/** CPU seconds (user + system) used so far by process `pid` (Linux). */
async function processCpuSeconds(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 of the full line, in clock ticks (100 per second).
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function ownCpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

interface Result {
  /** `ours`, or `baseline` (BENCH_BASELINE_DIR). */
  server: string;
  /** Which of the `--runs` (1, 2, …). */
  run: number;
  scenario: string;
  isolates: number;
  pushes: number;
  delivered: number;
  p50: number;
  p99: number;
  sameP50: number;
  sameP99: number;
  crossP50: number;
  crossP99: number;
  serverCpu: number;
  clientCpu: number;
  /** Server CPU (cores) by thread name. */
  threads: Map<string, number>;
  /** Share of the machine's CPU time left idle during the run (0–1). */
  idle: number;
  /** The 1-minute load average when the measurement began. */
  load: number;
  /** Commits that lost the clock race, and forwarded pushes committed by their own isolate. */
  conflicts: number;
  fallbacks: number;
  /** KV reads and commits per acknowledged push (all isolates). */
  kvReads: number;
  kvCommits: number;
}

/** Counters of the engine (summed over the isolates' `/metrics`) that tell how commits went. */
const ENGINE_COUNTERS = {
  conflicts: "tldraw_commit_conflicts_total",
  fallbacks: "tldraw_forward_fallbacks_total",
  kvCommits: 'kv_operations_total{kind="commit"}',
  kvReads: "kv_operations_total",
} as const;
type EngineCounters = Record<keyof typeof ENGINE_COUNTERS, number>;

async function engineCounters(server: Server): Promise<EngineCounters> {
  const totals: EngineCounters = { conflicts: 0, fallbacks: 0, kvCommits: 0, kvReads: 0 };
  for (const port of server.directPorts) {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    for (const [key, name] of Object.entries(ENGINE_COUNTERS)) {
      for (const line of text.split("\n")) {
        const matches = name.includes("{")
          ? line.startsWith(`${name} `)
          : line.startsWith(`${name} `) || line.startsWith(`${name}{`);
        // Reads: every kind of KV operation but commits.
        if (matches && !(key === "kvReads" && line.includes('kind="commit"'))) {
          totals[key as keyof EngineCounters] += Number(line.slice(line.lastIndexOf(" ") + 1));
        }
      }
    }
  }
  return totals;
}

/** Idle and total jiffies of all CPUs (`/proc/stat`). */
function machineJiffies(): { idle: number; total: number } {
  const line = Deno.readTextFileSync("/proc/stat").split("\n")[0]!;
  const fields = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal …: idle time is idle + iowait.
  return { idle: fields[3]! + fields[4]!, total: fields.reduce((a, b) => a + b, 0) };
}

async function run(
  server: Server,
  scenario: string,
  rooms: number,
  perRoom: number,
  isolates: number,
  thinkMs: number,
  spread: "clients" | "rooms" = "clients",
): Promise<Omit<Result, "server" | "run">> {
  const stats = new Stats();
  const clients: BenchClient[] = [];
  const tag = crypto.randomUUID().slice(0, 6);
  let index = 0;
  for (let r = 0; r < rooms; r++) {
    for (let c = 0; c < perRoom; c++) {
      // Clients of a room on every isolate (the general case), or each room wholly on one.
      const isolate = (spread === "clients" ? index : r) % isolates;
      const url = `ws://127.0.0.1:${server.directPorts[isolate]}/r/bench-${tag}-${r}`;
      clients.push(new BenchClient(url, isolate, index++, stats, thinkMs));
    }
    // Open rooms in small groups so that start-up does not stampede.
    if (r % 20 === 19) await Promise.all(clients.map((c) => c.connected));
  }
  await Promise.all(clients.map((c) => c.connected));
  await new Promise((resolve) => setTimeout(resolve, 300));
  for (const client of clients) client.start();
  await new Promise((resolve) => setTimeout(resolve, WARMUP_MS));
  const load = Deno.loadavg()[0]!;
  const serverCpu0 = await processCpuSeconds(server.pid);
  const threads0 = threadCpuSeconds(server.pid);
  const machine0 = machineJiffies();
  const clientCpu0 = ownCpuSeconds();
  const counters0 = await engineCounters(server);
  const started = performance.now();
  stats.measuring = true;
  await new Promise((resolve) => setTimeout(resolve, SECONDS * 1_000));
  stats.measuring = false;
  const seconds = (performance.now() - started) / 1_000;
  const serverCpu = (await processCpuSeconds(server.pid) - serverCpu0) / seconds;
  const clientCpu = (ownCpuSeconds() - clientCpu0) / seconds;
  const threads = new Map<string, number>();
  for (const [name, cpu] of threadCpuSeconds(server.pid)) {
    threads.set(name, (cpu - (threads0.get(name) ?? 0)) / seconds);
  }
  const machine1 = machineJiffies();
  const idle = (machine1.idle - machine0.idle) / (machine1.total - machine0.total);
  const counters1 = await engineCounters(server);
  for (const client of clients) client.stop();
  await new Promise((resolve) => setTimeout(resolve, 300));
  await Promise.all(clients.map((c) => c.close()));
  const same = stats.same.sort((a, b) => a - b);
  const cross = stats.cross.sort((a, b) => a - b);
  const all = [...same, ...cross].sort((a, b) => a - b);
  return {
    scenario,
    isolates,
    pushes: stats.acked / seconds,
    delivered: stats.delivered / seconds,
    p50: percentile(all, 0.5),
    p99: percentile(all, 0.99),
    sameP50: percentile(same, 0.5),
    sameP99: percentile(same, 0.99),
    crossP50: percentile(cross, 0.5),
    crossP99: percentile(cross, 0.99),
    serverCpu,
    clientCpu,
    threads,
    idle,
    load,
    conflicts: (counters1.conflicts - counters0.conflicts) / seconds,
    fallbacks: (counters1.fallbacks - counters0.fallbacks) / seconds,
    kvReads: (counters1.kvReads - counters0.kvReads) / stats.acked,
    kvCommits: (counters1.kvCommits - counters0.kvCommits) / stats.acked,
  };
}

function fmt(n: number, digits = 1): string {
  return Number.isNaN(n) ? "-" : n.toFixed(digits);
}

const dataDir = await Deno.makeTempDir({ prefix: "rooms-bench-" });
const baselineDir = Deno.env.get("BENCH_BASELINE_DIR");
const servers: { name: string; server: Server }[] = [
  { name: "ours", server: await startServer(`${dataDir}/ours`, ROOT) },
];
if (baselineDir) {
  const root = new URL(`file://${await Deno.realPath(baselineDir)}/`);
  servers.push({ name: "baseline", server: await startServer(`${dataDir}/baseline`, root) });
}
const results: Result[] = [];
const only = new Set(values.only.split(",").filter(Boolean));
const wanted = (key: string) => only.size === 0 || only.has(key);
let turn = 0;
let runNumber = 1;
/** Runs one scenario on every server, alternating which goes first. */
async function each(
  run: (server: Server) => Promise<Omit<Result, "server" | "run">>,
): Promise<void> {
  const order = turn++ % 2 === 0 ? servers : [...servers].reverse();
  const measured: Result[] = [];
  for (const { name, server } of order) {
    measured.push({ server: name, run: runNumber, ...await run(server) });
  }
  results.push(...measured.sort((a, b) => a.server.localeCompare(b.server)).reverse());
}
try {
  for (; runNumber <= RUNS; runNumber++) {
    for (const isolates of [1, 2]) {
      if (!wanted(`1x50-${isolates}`)) continue;
      await each((server) => run(server, "1 room × 50 clients", 1, 50, isolates, 50));
    }
    for (const isolates of [1, 2]) {
      if (!wanted(`200x5-${isolates}`)) continue;
      await each((server) => run(server, "200 rooms × 5 clients", 200, 5, isolates, 0));
    }
    if (wanted("200x5-split")) {
      await each((server) =>
        run(server, "200 rooms × 5 clients, rooms split", 200, 5, 2, 0, "rooms")
      );
    }
  }
} finally {
  for (const { server } of servers) await server.stop();
  await Deno.remove(dataDir, { recursive: true });
}

console.log(
  `\ntldraw rooms across isolates (${SECONDS} s per run after ${WARMUP_MS / 1000} s warm-up; ` +
    `${navigator.hardwareConcurrency} cores; latencies in ms; CPU in cores)`,
);
const header = [
  "server",
  "run",
  "scenario",
  "isolates",
  "pushes/s",
  "delivered/s",
  "p50",
  "p99",
  "same p50",
  "same p99",
  "cross p50",
  "cross p99",
  "server CPU",
  "client CPU",
  "lost races/s",
  "fallbacks/s",
  "KV reads/push",
  "KV commits/push",
];
const rows = results.map((r) => [
  r.server,
  String(r.run),
  r.scenario,
  String(r.isolates),
  fmt(r.pushes, 0),
  fmt(r.delivered, 0),
  fmt(r.p50),
  fmt(r.p99),
  fmt(r.sameP50),
  fmt(r.sameP99),
  fmt(r.crossP50),
  fmt(r.crossP99),
  fmt(r.serverCpu, 2),
  fmt(r.clientCpu, 2),
  fmt(r.conflicts, 0),
  fmt(r.fallbacks, 0),
  fmt(r.kvReads, 2),
  fmt(r.kvCommits, 2),
]);
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ");
console.log(line(header));
console.log(widths.map((w) => "-".repeat(w)).join("-|-"));
for (const row of rows) console.log(line(row));
console.log(
  "\nwhere the CPU goes (cores): the server's threads (isolate 0 and 1 are its first Workers),\n" +
    "the load generator, the machine's idle share, and its load average as the run began",
);
const threadHeader = [
  "server",
  "run",
  "scenario",
  "isolates",
  "isolate 0 JS",
  "isolate 1 JS",
  "KV SQLite",
  "main thread",
  "V8 helpers",
  "other",
  "server",
  "client",
  "idle",
  "load 1m",
];
/**
 * The isolates' JavaScript threads: the two first Worker threads (`worker-N`) still running during
 * the run. Workers that ended before it (PGlite's start-up Worker) are not listed.
 */
function isolateThreads(threads: Map<string, number>): string[] {
  return [...threads.keys()]
    .filter((name) => /^worker-\d+$/.test(name))
    .sort((a, b) => Number(a.slice(7)) - Number(b.slice(7)))
    .slice(0, 2);
}

const threadRows = results.map((r) => {
  const t = (name: string) => r.threads.get(name) ?? 0;
  const [isolate0 = "", isolate1 = ""] = isolateThreads(r.threads);
  const known = t(isolate0) + t(isolate1) + t("sw-0") + t("deno") + t("V8 DefaultWorke");
  const all = [...r.threads.values()].reduce((a, b) => a + b, 0);
  return [
    r.server,
    String(r.run),
    r.scenario,
    String(r.isolates),
    fmt(t(isolate0), 2),
    fmt(t(isolate1), 2),
    fmt(t("sw-0"), 2),
    fmt(t("deno"), 2),
    fmt(t("V8 DefaultWorke"), 2),
    fmt(Math.max(0, all - known), 2),
    fmt(r.serverCpu, 2),
    fmt(r.clientCpu, 2),
    `${fmt(100 * r.idle, 0)} %`,
    fmt(r.load, 2),
  ];
});
const threadWidths = threadHeader.map((h, i) =>
  Math.max(h.length, ...threadRows.map((row) => row[i]!.length))
);
const threadLine = (cells: string[]) => cells.map((c, i) => c.padEnd(threadWidths[i]!)).join(" | ");
console.log(threadLine(threadHeader));
console.log(threadWidths.map((w) => "-".repeat(w)).join("-|-"));
for (const row of threadRows) console.log(threadLine(row));
console.log();
for (const { name } of servers) {
  for (const scenario of new Set(results.map((r) => r.scenario))) {
    const mine = results.filter((r) => r.server === name);
    for (const two of mine.filter((r) => r.scenario === scenario && r.isolates === 2)) {
      const one = singleOf(two);
      if (!one) continue;
      console.log(
        `${name}, run ${two.run}, ${scenario}: 2 isolates deliver ${
          fmt(two.delivered / one.delivered, 2)
        }× the single ` +
          `isolate; the bus adds ${fmt(two.crossP50 - two.sameP50)} ms at p50, ` +
          `${fmt(two.crossP99 - two.sameP99)} ms at p99 (cross p99 = ` +
          `${fmt(two.crossP99 / two.sameP99, 2)}× same-isolate p99)`,
      );
    }
  }
}

// What this machine can give the many-room runs at all: the load generator shares its cores, so
// the CPU an acknowledged push costs (server and load generator) caps any run's throughput.
const cores = navigator.hardwareConcurrency;
console.log(
  `\nCPU ceiling: ${cores} cores ÷ the CPU one acknowledged push cost in the run (server + load ` +
    "generator), against the single isolate's push/s",
);
for (const r of results) {
  if (r.isolates !== 2 || !r.scenario.startsWith("200 rooms")) continue;
  const one = singleOf(r);
  if (!one) continue;
  const perPush = (r.serverCpu + r.clientCpu) / r.pushes;
  const ceiling = cores / perPush;
  console.log(
    `${r.server}, run ${r.run}, ${r.scenario}: ${
      fmt(perPush * 1e6, 0)
    } µs of CPU per push (single isolate: ` +
      `${fmt((one.serverCpu + one.clientCpu) / one.pushes * 1e6, 0)} µs, using ` +
      `${fmt(100 * (1 - one.idle), 0)} % of the machine): at most ${fmt(ceiling, 0)} push/s, ` +
      `${fmt(ceiling / one.pushes, 2)}× the single isolate (measured ` +
      `${fmt(r.pushes / one.pushes, 2)}×; at the single isolate's CPU per push ` +
      `${fmt(cores / (one.serverCpu + one.clientCpu), 2)}×)`,
  );
}

/** The single-isolate result `two` (a run on two isolates) is measured against: same server and run. */
function singleOf(two: Result): Result | undefined {
  return results.find((o) =>
    o.server === two.server && o.run === two.run && o.isolates === 1 &&
    two.scenario.startsWith(o.scenario)
  );
}

// Issue 17: CPU per acknowledged push (server processes only) on two isolates ≤ 1.15× one
// isolate's with rooms split, ≤ 1.5× with clients spread; per run, then median and range.
const TARGETS = [
  { scenario: "1 room × 50 clients", label: "1 room × 50, clients spread", limit: 1.5 },
  { scenario: "200 rooms × 5 clients", label: "200 rooms, clients spread", limit: 1.5 },
  { scenario: "200 rooms × 5 clients, rooms split", label: "200 rooms, rooms split", limit: 1.15 },
];
const cpuPerPush = (r: Result) => r.serverCpu / r.pushes * 1e6;
console.log(
  "\ntargets (issue 17): server CPU per acknowledged push, two isolates ÷ one isolate of the same run",
);
for (const { name } of servers) {
  for (const target of TARGETS) {
    const pairs = results
      .filter((r) => r.server === name && r.scenario === target.scenario && r.isolates === 2)
      .map((two) => ({ two, one: singleOf(two) }))
      .filter((p): p is { two: Result; one: Result } => p.one !== undefined);
    if (pairs.length === 0) continue;
    const ratios = pairs.map(({ one, two }) => cpuPerPush(two) / cpuPerPush(one));
    const sorted = [...ratios].sort((a, b) => a - b);
    const median = sorted.length % 2 === 1
      ? sorted[(sorted.length - 1) / 2]!
      : (sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2;
    const perRun = pairs.map(({ one, two }, i) =>
      `run ${two.run}: ${fmt(cpuPerPush(two), 0)} / ${fmt(cpuPerPush(one), 0)} µs = ` +
      `${fmt(ratios[i]!, 2)}${ratios[i]! <= target.limit ? " met" : ""}`
    );
    console.log(
      `  ${
        median <= target.limit ? "MET " : "MISS"
      }  ${name}, ${target.label} ≤ ${target.limit}×: ` +
        `median ${fmt(median, 2)} (range ${fmt(sorted[0]!, 2)}–${fmt(sorted.at(-1)!, 2)}; ` +
        `met in ${ratios.filter((r) => r <= target.limit).length} of ${ratios.length}) — ` +
        perRun.join(", "),
    );
  }
}

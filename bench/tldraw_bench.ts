/**
 * tldraw rooms, side by side with the reference (issue 3's benchmark): `deno task bench tldraw`, or
 * with flags `deno run -A bench/tldraw_bench.ts [--seconds=20] [--only=50x10,sat] [--cpu-prof=DIR]`
 * (`bench/main.ts` does not forward flags; put them in `TLDRAW_BENCH_FLAGS` instead, e.g.
 * `TLDRAW_BENCH_FLAGS="--seconds=20" deno task bench tldraw`). Flags are listed below.
 *
 * With `BENCH_DATABASE_URL=postgres://…` our server uses that Postgres database (as in production)
 * instead of embedded PGlite.
 *
 * Starts our server (`our_server.ts`: production entry, file-backed KV in a temp `DATA_DIR`, every
 * change committed to KV before it is acknowledged) and the reference (`reference_server.ts`:
 * `TLSocketRoom` in memory), each in its own process, and drives both with the same load from a
 * third process (`load_client.ts`). Scenarios alternate which server goes first, so a change in the
 * machine's background load is spread over both. Prints one table; server CPU and RSS come from
 * `/proc` over each measured window.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { runLoad } from "./load_process.ts";
import { type SaturationSpec, type SteadySpec, stepSustained } from "./load_spec.ts";
import { machineLoad } from "./proc_stats.ts";
import { formatCount, formatLatency } from "./report_table.ts";
import { ServerProcess } from "./server_process.ts";
import {
  type BenchResults,
  type IdleOutcome,
  type JoinOutcome,
  renderReport,
  type Saturation,
} from "./tldraw_report.ts";
import { checkTargets, renderRoundsSummary } from "./tldraw_targets.ts";
import { type Measured, measured, WindowMeter } from "./window_meter.ts";

const { values: flags } = parseArgs({
  args: [...(Deno.env.get("TLDRAW_BENCH_FLAGS")?.split(/\s+/).filter(Boolean) ?? []), ...Deno.args],
  allowPositionals: true,
  options: {
    /** Measured seconds per steady scenario. */
    seconds: { type: "string", default: "6" },
    /** Unmeasured load before each window (JIT, connection set-up settling). */
    warmup: { type: "string", default: "1" },
    /** Longest wait for outstanding results / fan-outs after a window. */
    drain: { type: "string", default: "3" },
    /** Saturation: measured seconds per step, first per-client rate, multiplier, step limit. */
    "step-seconds": { type: "string", default: "3" },
    "sat-start": { type: "string", default: "10" },
    "sat-factor": { type: "string", default: "1.3" },
    "sat-steps": { type: "string", default: "24" },
    "sat-clients": { type: "string", default: "20" },
    /** Saturation: rates tried between the last sustained step and the failed one. */
    "sat-refine": { type: "string", default: "2" },
    /** Saturation: a step fails when fan-out p99 exceeds this (ms). */
    "limit-ms": { type: "string", default: "100" },
    /** Cold join / memory: shapes per room and rooms measured. */
    shapes: { type: "string", default: "5000" },
    "memory-rooms": { type: "string", default: "6" },
    /** Idle rooms: rooms, clients per room, shapes per room (scenario `idle`). */
    "idle-rooms": { type: "string", default: "1000" },
    "idle-clients": { type: "string", default: "2" },
    "idle-shapes": { type: "string", default: "10" },
    /** Every n-th document push creates a shape (the others move one). */
    "create-every": { type: "string", default: "10" },
    /** Comma list of scenario keys (10x10, 50x10, 50x30p, 100r, sat, join, idle); default all. */
    only: { type: "string", default: "" },
    /**
     * Comma list of servers: ours, reference, and for diagnosis ours-memkv (our engine on an
     * in-memory KV: no fsync, so the gap to `ours` is the cost of durable commits) and baseline
     * (our server from the checkout in BENCH_BASELINE_DIR, e.g. `git worktree add /tmp/base
     * <commit>`: before and after a change, in one run), and ours-kv<ms> (ours with every KV
     * read and commit taking <ms> longer, as Deno Deploy's remote KV does, e.g. ours-kv20).
     */
    servers: { type: "string", default: "ours,reference" },
    /** Write a V8 CPU profile of our server into this directory (`deno run --cpu-prof`). */
    "cpu-prof": { type: "string", default: "" },
    /**
     * Rounds of the whole benchmark, each on fresh servers; with more than one, each target's
     * median and range over the rounds follow (one round's verdict swings with machine load).
     */
    rounds: { type: "string", default: "1" },
    /** Also write the raw results as JSON here (`rounds`: one entry per round). */
    json: { type: "string", default: "" },
  },
});

const SECONDS = Number(flags.seconds);
const WARMUP = Number(flags.warmup);
const DRAIN = Number(flags.drain);
const LIMIT_MS = Number(flags["limit-ms"]);
const SHAPES = Number(flags.shapes);
const MEMORY_ROOMS = Number(flags["memory-rooms"]);
const CREATE_EVERY = Number(flags["create-every"]);
const ROUNDS = Math.max(1, Number(flags.rounds));
const only = new Set(flags.only.split(",").filter(Boolean));
const wanted = (key: string) => only.size === 0 || only.has(key);
/**
 * Between runs: let the previous run's session removals and unloads finish (up to 15 s: after
 * saturation a room of tens of MB writes its history version and snapshot, seconds of CPU that fell
 * into the next scenario's window with a 3 s wait).
 */
const IDLE_WAIT_MS = 15_000;
/**
 * Both servers drop a closed session 5 s after its socket closed and only then unload the room:
 * until then a server sits idle, and its unload (a snapshot, a history version) would fall into the
 * next run's window, on whichever server that is (measured: the seeding's six 5,000-shape rooms
 * unloading in the first scenario's window took our fan-out p99 there from 11 to 41 ms).
 */
const UNLOAD_AFTER_MS = 6_500;
/** When each server's last load ended (its sessions closed). */
const loadEndedAt = new Map<string, number>();

/** Waits until every server has had time to unload what earlier runs left, and is idle. */
async function settle(servers: ServerProcess[]): Promise<void> {
  const last = Math.max(0, ...servers.map((s) => loadEndedAt.get(s.name) ?? 0));
  const wait = last + UNLOAD_AFTER_MS - performance.now();
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  await Promise.all(servers.map((s) => s.waitIdle(IDLE_WAIT_MS)));
}

interface SteadyScenario {
  key: string;
  title: string;
  rooms: number;
  clients: number;
  rate: number;
  mode: "doc" | "presence";
}

const STEADY: SteadyScenario[] = [
  {
    key: "10x10",
    title: "1 room × 10 cl × 10 push/s",
    rooms: 1,
    clients: 10,
    rate: 10,
    mode: "doc",
  },
  {
    key: "50x10",
    title: "1 room × 50 cl × 10 push/s",
    rooms: 1,
    clients: 50,
    rate: 10,
    mode: "doc",
  },
  {
    key: "50x30p",
    title: "1 room × 50 cl × 30 presence/s",
    rooms: 1,
    clients: 50,
    rate: 30,
    mode: "presence",
  },
  {
    key: "100r",
    title: "100 rooms × 5 cl × 2 push/s",
    rooms: 100,
    clients: 5,
    rate: 2,
    mode: "doc",
  },
];

/** Scenarios run so far (decides which server goes first). */
let scenarioIndex = 0;

/** Runs `body` for each server, alternating which goes first from one scenario to the next. */
async function interleaved<T>(
  servers: ServerProcess[],
  body: (server: ServerProcess) => Promise<T>,
): Promise<Map<string, T>> {
  const order = scenarioIndex++ % 2 === 0 ? servers : [...servers].reverse();
  const results = new Map<string, T>();
  for (const server of order) {
    await settle(servers);
    try {
      results.set(server.name, await body(server));
    } catch (error) {
      // One failed run (e.g. timed out on an overloaded machine) leaves a gap, not an empty report.
      progress(`${server.name}: ${error instanceof Error ? error.message : error}`);
    } finally {
      loadEndedAt.set(server.name, performance.now());
    }
  }
  return results;
}

async function runSteady(
  server: ServerProcess,
  scenario: SteadyScenario,
  runId: string,
): Promise<Measured> {
  const spec: SteadySpec = {
    kind: "steady",
    url: server.url,
    roomPrefix: `${scenario.key}-${runId}`,
    rooms: scenario.rooms,
    clientsPerRoom: scenario.clients,
    rate: scenario.rate,
    mode: scenario.mode,
    createEvery: CREATE_EVERY,
    warmupSeconds: WARMUP,
    seconds: SECONDS,
    drainSeconds: DRAIN,
  };
  const meter = new WindowMeter(server);
  const logLines = server.stderrLines;
  const result = await runLoad(spec, meter.onMark);
  const phase = result.phases[0]!;
  progress(`${scenario.key} ${server.name}: fan-out ${formatLatency(phase.fanout)} ms`);
  return measured(server, meter, "steady", phase, result, logLines);
}

async function runSaturation(server: ServerProcess, runId: string): Promise<Saturation> {
  const spec: SaturationSpec = {
    kind: "saturation",
    url: server.url,
    roomPrefix: `sat-${runId}`,
    clientsPerRoom: Number(flags["sat-clients"]),
    startRate: Number(flags["sat-start"]),
    factor: Number(flags["sat-factor"]),
    maxSteps: Number(flags["sat-steps"]),
    warmupSeconds: 0.5,
    stepSeconds: Number(flags["step-seconds"]),
    drainSeconds: DRAIN,
    limitMs: LIMIT_MS,
    createEvery: CREATE_EVERY,
    refineSteps: Number(flags["sat-refine"]),
  };
  const meter = new WindowMeter(server);
  const logLines = server.stderrLines;
  const result = await runLoad(spec, meter.onMark);
  const steps = result.phases.map((phase, i) =>
    measured(server, meter, `step${i}`, phase, result, logLines)
  );
  const sustained = steps.filter((s) => stepSustained(s.phase, LIMIT_MS));
  // The highest rate sustained (refining rates come after the failure that ended the ramp).
  const best = sustained.reduce<Measured | undefined>(
    (top, s) => (!top || s.phase.offeredPerSec > top.phase.offeredPerSec ? s : top),
    undefined,
  );
  const failed = steps.find((s) => !stepSustained(s.phase, LIMIT_MS));
  progress(`saturation ${server.name}: ${best ? formatCount(best.phase.offeredPerSec) : 0} push/s`);
  return { steps, best, failed };
}

async function runJoin(server: ServerProcess, roomIds: string[]): Promise<JoinOutcome> {
  const heapBefore = await server.gc();
  const before = server.rssBytes();
  let after = before;
  let heapAfter = heapBefore;
  const result = await runLoad({ kind: "join", url: server.url, roomIds }, async (mark) => {
    if (mark !== "joined") return;
    heapAfter = await server.gc();
    after = server.rssBytes();
  });
  progress(`join ${server.name}: cold ${formatLatency(result.coldJoin)} ms`);
  return {
    result,
    perRoomBytes: (after - before) / roomIds.length,
    perRoomHeapBytes: (heapAfter - heapBefore) / roomIds.length,
  };
}

async function runIdle(server: ServerProcess, runId: string): Promise<IdleOutcome> {
  const rooms = Number(flags["idle-rooms"]);
  const roomIds = Array.from({ length: rooms }, (_, i) => `idle-${runId}-${i}`);
  const reading = async () => ({ heap: await server.gc(), rss: server.rssBytes() });
  const before = await reading();
  let idle = before;
  let left = before;
  const result = await runLoad({
    kind: "idle",
    url: server.url,
    roomIds,
    clientsPerRoom: Number(flags["idle-clients"]),
    shapes: Number(flags["idle-shapes"]),
    // Both servers drop a closed session after 5 s and then unload the room.
    unloadSeconds: 8,
  }, async (mark) => {
    if (mark === "idle") idle = await reading();
    if (mark === "left") left = await reading();
  });
  progress(
    `idle ${server.name}: ${((idle.heap - before.heap) / rooms / 1024).toFixed(0)} KB heap/room`,
  );
  return {
    result,
    perRoomBytes: (idle.rss - before.rss) / rooms,
    perRoomHeapBytes: (idle.heap - before.heap) / rooms,
    leftHeapBytes: left.heap - before.heap,
  };
}

function progress(message: string): void {
  console.error(`  … ${message}`);
}

/**
 * `BENCH_BASELINE_ENV=K=V,K=V`: settings for the baseline server only; with `BENCH_BASELINE_DIR=.`
 * a setting is measured against the default in one run (e.g. `HISTORY_INTERVAL_MS=3600000`).
 */
function baselineEnv(): Record<string, string> {
  const pairs = (Deno.env.get("BENCH_BASELINE_ENV") ?? "").split(",").filter(Boolean);
  return Object.fromEntries(pairs.map((pair) => {
    const at = pair.indexOf("=");
    if (at < 1) throw new Error(`BENCH_BASELINE_ENV: ${pair} is not K=V`);
    return [pair.slice(0, at), pair.slice(at + 1)];
  }));
}

async function startServers(dataDir: string): Promise<ServerProcess[]> {
  const names = flags.servers.split(",").filter(Boolean);
  const profile = flags["cpu-prof"] ? [`--cpu-prof`, `--cpu-prof-dir=${flags["cpu-prof"]}`] : [];
  return await Promise.all(names.map((name) => {
    if (name === "reference") {
      return ServerProcess.start({
        name,
        entry: new URL("./reference_server.ts", import.meta.url),
      });
    }
    const kvLatency = /^ours-kv(\d+)$/.exec(name)?.[1];
    if (name !== "ours" && name !== "ours-memkv" && name !== "baseline" && !kvLatency) {
      throw new Error(`unknown server ${name}`);
    }
    const baseline = Deno.env.get("BENCH_BASELINE_DIR");
    if (name === "baseline" && !baseline) throw new Error("baseline needs BENCH_BASELINE_DIR");
    return ServerProcess.start({
      name,
      entry: name === "baseline"
        ? new URL(`file://${Deno.realPathSync(baseline!)}/bench/our_server.ts`)
        : new URL("./our_server.ts", import.meta.url),
      env: {
        DATA_DIR: `${dataDir}/${name}`,
        ...(name === "ours-memkv" ? { BENCH_KV_PATH: ":memory:" } : {}),
        ...(kvLatency ? { BENCH_KV_LATENCY_MS: kvLatency } : {}),
        ...(Deno.env.get("BENCH_DATABASE_URL")
          ? { BENCH_DATABASE_URL: Deno.env.get("BENCH_DATABASE_URL")! }
          : {}),
        ...(name === "baseline" ? baselineEnv() : {}),
      },
      denoFlags: profile,
    });
  }));
}

/**
 * Which code was measured: the commit, and the engine files changed on top of it (the tree is
 * shared and moves; a number without this is hard to compare later).
 */
async function codeVersion(): Promise<string> {
  const git = async (...args: string[]) => {
    try {
      const out = await new Deno.Command("git", { args, stdout: "piped", stderr: "null" }).output();
      // Only the end: porcelain lines start with a status column that may be a space.
      return new TextDecoder().decode(out.stdout).trimEnd();
    } catch {
      return "";
    }
  };
  const head = await git("log", "-1", "--format=%h %cI");
  const changed = (await git(
    "--no-optional-locks",
    "status",
    "--porcelain",
    "--",
    "sync/tldraw",
    "routes/rooms.ts",
  ))
    .split("\n").filter(Boolean).map((line) => line.slice(3));
  return `code: ${head || "unknown"}` +
    (changed.length ? ` + uncommitted changes in ${changed.join(", ")}` : " (clean)");
}

/** One round: fresh servers (own data directory), every wanted scenario, then the servers stop. */
async function runRound(): Promise<BenchResults> {
  const runId = Date.now().toString(36);
  const dataDir = await Deno.makeTempDir({ prefix: "tldraw-bench-" });
  loadEndedAt.clear();
  const servers = await startServers(dataDir);
  const steadyResults = new Map<string, Map<string, Measured>>();
  let saturation: Map<string, Saturation> | undefined;
  let joins: Map<string, JoinOutcome> | undefined;
  let idle: Map<string, IdleOutcome> | undefined;
  try {
    // Seed the cold-join rooms first: by the time they are joined, their seeding session is long
    // gone and both servers have unloaded them.
    const joinRooms = Array.from({ length: MEMORY_ROOMS }, (_, i) => `cold-${runId}-${i}`);
    if (wanted("join")) {
      await Promise.all(servers.map(async (server) => {
        const seeded = await runLoad({
          kind: "seed",
          url: server.url,
          roomIds: joinRooms,
          shapes: SHAPES,
          perPush: 250,
        });
        loadEndedAt.set(server.name, performance.now());
        progress(`seeded ${server.name} in ${seeded.seedSeconds?.toFixed(1)} s`);
      }));
    }
    for (const scenario of STEADY.filter((s) => wanted(s.key))) {
      steadyResults.set(
        scenario.key,
        await interleaved(servers, (server) => runSteady(server, scenario, runId)),
      );
    }
    if (wanted("sat")) saturation = await interleaved(servers, (s) => runSaturation(s, runId));
    // The seeded rooms are unloaded by now: `interleaved` settles the servers first.
    if (wanted("join")) joins = await interleaved(servers, (server) => runJoin(server, joinRooms));
    if (wanted("idle")) idle = await interleaved(servers, (server) => runIdle(server, runId));
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
  for (const server of servers) {
    if (server.stderrLines > 0) {
      console.log(`${server.name} wrote ${server.stderrLines} log lines to stderr`);
    }
  }
  return {
    servers: servers.map((server) => server.name),
    steady: STEADY.flatMap((scenario) => {
      const results = steadyResults.get(scenario.key);
      return results ? [{ key: scenario.key, title: scenario.title, results }] : [];
    }),
    ...(saturation ? { saturation } : {}),
    ...(joins ? { joins } : {}),
    ...(idle ? { idle } : {}),
    idleRooms: Number(flags["idle-rooms"]),
    idleClients: Number(flags["idle-clients"]),
    limitMs: LIMIT_MS,
    saturationClients: Number(flags["sat-clients"]),
    drainSeconds: DRAIN,
    shapes: SHAPES,
    memoryRooms: MEMORY_ROOMS,
  };
}

async function main(): Promise<void> {
  const startLoad = machineLoad();
  console.log(
    `tldraw rooms vs reference — ${new Date().toISOString()} — Deno ${Deno.version.deno}, ` +
      `${startLoad.cpus} CPUs, load average ${startLoad.load1.toFixed(2)} / ` +
      `${startLoad.load5.toFixed(2)} (1 / 5 min) at start`,
  );
  console.log(await codeVersion());
  console.log(
    `our database: ${
      Deno.env.get("BENCH_DATABASE_URL") ? "Postgres (BENCH_DATABASE_URL)" : "embedded PGlite"
    }`,
  );
  const rounds: BenchResults[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    if (ROUNDS > 1) console.log(`\n=== round ${round} of ${ROUNDS}`);
    const results = await runRound();
    rounds.push(results);
    console.log(renderReport(results));
    const load = machineLoad();
    console.log(
      `\nload average at end: ${load.load1.toFixed(2)} / ${load.load5.toFixed(2)} ` +
        `(1 / 5 min) on ${load.cpus} CPUs`,
    );
  }
  if (ROUNDS > 1) console.log("\n" + renderRoundsSummary(rounds.map(checkTargets)));
  if (flags.json) {
    const plain = (results: BenchResults) => ({
      steady: Object.fromEntries(
        results.steady.map((s) => [s.key, Object.fromEntries(s.results)]),
      ),
      saturation: results.saturation ? Object.fromEntries(results.saturation) : undefined,
      joins: results.joins ? Object.fromEntries(results.joins) : undefined,
      idle: results.idle ? Object.fromEntries(results.idle) : undefined,
    });
    await Deno.writeTextFile(
      flags.json,
      JSON.stringify({ startLoad, rounds: rounds.map(plain) }, null, 2),
    );
  }
}

if (import.meta.main) await main();

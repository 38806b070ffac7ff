/**
 * The tldraw benchmark's report: the side-by-side table, the saturation steps, cold join and memory,
 * and the issue's targets judged on the run.
 *
 * @module
 */
import type { LoadResult } from "./load_spec.ts";
import { formatCount, formatLatency, formatMb, formatMs, renderTable } from "./report_table.ts";
import { checkTargets, renderTargets } from "./tldraw_targets.ts";
import type { Measured } from "./window_meter.ts";

/** Saturation: every step measured; `best` is the last sustained one. */
export interface Saturation {
  steps: Measured[];
  best: Measured | undefined;
  failed: Measured | undefined;
}

/** Cold join of seeded rooms, then memory per loaded room (after a full GC, before vs after). */
export interface JoinOutcome {
  result: LoadResult;
  /** RSS growth per loaded room (what the issue asks; noisy: freed pages are not always returned). */
  perRoomBytes: number;
  /** V8 heap growth per loaded room, after a full GC (the steadier number). */
  perRoomHeapBytes: number;
}

/** Many small rooms with idle clients: memory per room while loaded, and after all left. */
export interface IdleOutcome {
  result: LoadResult;
  perRoomBytes: number;
  perRoomHeapBytes: number;
  /** V8 heap above the reading before the rooms, once every client left and rooms unloaded. */
  leftHeapBytes: number;
}

/** Everything one run measured. Maps are keyed by server name (`ours`, `reference`, …). */
export interface BenchResults {
  /** Server names in the order they are listed. */
  servers: string[];
  steady: { key: string; title: string; results: Map<string, Measured> }[];
  saturation?: Map<string, Saturation>;
  joins?: Map<string, JoinOutcome>;
  idle?: Map<string, IdleOutcome>;
  idleRooms: number;
  idleClients: number;
  limitMs: number;
  saturationClients: number;
  drainSeconds: number;
  shapes: number;
  memoryRooms: number;
}

/** The whole report as text. */
export function renderReport(results: BenchResults): string {
  const parts = [mainTable(results)];
  const kv = kvTable(results);
  if (kv) {
    parts.push(
      `${kv}\nloop late: ticks of the server's 25 ms event-loop timer that ran more than 20 / 50 / ` +
        "100 ms late in the window (event_loop_delay_seconds: GC pauses, long tasks, CPU contention);\n" +
        "slow commits: KV atomic commits that took more than 20 / 50 / 100 ms " +
        "(kv_commit_duration_seconds: the KV, not the event loop);\n" +
        "server push: committed pushes the server took longer than 5 / 10 / 25 ms to answer, from " +
        "receipt to result (tldraw_push_duration_seconds: the server's part of the tail)",
    );
  }
  if (results.saturation) parts.push(saturationSteps(results));
  if (results.joins) parts.push(joinTable(results));
  if (results.idle) parts.push(idleTable(results));
  parts.push(renderTargets(checkTargets(results)));
  return "\n" + parts.join("\n\n");
}

function mainTable(results: BenchResults): string {
  const { servers } = results;
  const rows: string[][] = [];
  for (const scenario of results.steady) {
    for (const name of servers) {
      const m = scenario.results.get(name);
      if (m) rows.push(measuredRow(name === servers[0] ? scenario.title : "", name, m));
    }
  }
  for (const name of results.saturation ? servers : []) {
    const s = results.saturation!.get(name);
    const best = s?.best;
    const row = best ? measuredRow("", name, best) : ["", name, ...Array(9).fill("–")];
    row[0] = name === servers[0]
      ? `saturation 1 room × ${results.saturationClients} cl (fan-out p99 ≤ ${results.limitMs} ms)`
      : "";
    // No sustained step: the limit lies below the first one.
    const first = s?.steps[0]?.phase.offeredPerSec ?? 0;
    row[1] = `${name} @ ${
      best ? formatCount(best.phase.offeredPerSec) : `< ${formatCount(first)}`
    } push/s`;
    rows.push(row);
  }
  const table = renderTable(
    [
      "scenario",
      "server",
      "push→result p50/p99/max ms",
      "push→all peers p50/p99/max ms",
      "deliv/s",
      "frames/s",
      "CPU % (JS thr)",
      "RSS MB",
      "gen CPU %",
      "load1",
      "errors",
    ],
    rows,
    new Set([4, 5, 6, 7, 8, 9, 10]),
  );
  return table + "\n" +
    "deliv/s: pushes delivered to peers (push × peer) per second; frames/s: WebSocket frames the " +
    "clients received; CPU %: server process, % of one core over the window (JS thr: its " +
    "JavaScript thread alone); gen CPU %: the load generator; load1: machine load average at the " +
    "window's end; errors: socket errors/unexpected closes, pushes without result or fan-out " +
    `${results.drainSeconds} s after the window.`;
}

function measuredRow(title: string, name: string, m: Measured): string[] {
  return [
    title,
    name,
    formatLatency(m.phase.ack),
    formatLatency(m.phase.fanout),
    formatCount(m.phase.deliveredPerSec),
    formatCount(m.phase.framesPerSec),
    `${m.cpuPercent.toFixed(0)} (${m.mainCpuPercent.toFixed(0)})`,
    formatMb(m.rssBytes),
    m.phase.clientCpuPercent.toFixed(0),
    m.load1.toFixed(1),
    String(m.errors),
  ];
}

function saturationSteps(results: BenchResults): string {
  const width = Math.max(...results.servers.map((name) => name.length));
  const lines = results.servers.map((name) => {
    const steps = results.saturation!.get(name)?.steps ?? [];
    return `  ${name.padEnd(width)}  ` +
      steps.map((s) =>
        `${formatCount(s.phase.offeredPerSec)}→${formatMs(s.phase.fanout.p99)}` +
        `${s.phase.lostAcks + s.phase.lostFanouts ? "(lost)" : ""} ` +
        `${s.cpuPercent.toFixed(0)}% (${s.mainCpuPercent.toFixed(0)}%)` +
        (s.kv && s.kv.loopStalls[1] > 0 ? ` late ${s.kv.loopStalls[1]}` : "") +
        (s.kv && s.kv.slowCommits[1] > 0 ? ` kv ${s.kv.slowCommits[1]}` : "")
      ).join(", ");
  });
  return "saturation steps (offered push/s → fan-out p99 ms, server CPU % (JS thread %), " +
    "event-loop ticks > 50 ms late and KV commits > 50 ms, if any):\n" + lines.join("\n");
}

/**
 * KV operations per push in the steady scenarios, and how often the event loop ran late (our servers
 * count both; the reference has neither).
 */
function kvTable(results: BenchResults): string | undefined {
  const rows = results.steady.flatMap((scenario) =>
    results.servers.flatMap((name) => {
      const m = scenario.results.get(name);
      if (!m?.kv) return [];
      const perPush = (perSec: number) =>
        m.phase.sentPerSec > 0 ? (perSec / m.phase.sentPerSec).toFixed(2) : "n/a";
      return [[
        scenario.title,
        name,
        formatCount(m.kv.readsPerSec),
        formatCount(m.kv.commitsPerSec),
        perPush(m.kv.readsPerSec),
        perPush(m.kv.commitsPerSec),
        m.kv.loopStalls.join(" / "),
        m.kv.slowCommits.join(" / "),
        m.kv.slowPushes.join(" / "),
      ]];
    })
  );
  if (rows.length === 0) return undefined;
  return renderTable(
    [
      "KV operations",
      "server",
      "reads/s",
      "commits/s",
      "reads/push",
      "commits/push",
      "loop late >20/50/100 ms",
      "slow commits >20/50/100 ms",
      "server push >5/10/25 ms",
    ],
    rows,
    new Set([2, 3, 4, 5, 6, 7, 8]),
  );
}

function idleTable(results: BenchResults): string {
  const { servers } = results;
  const kb = (bytes: number) => (bytes / 1024).toFixed(0);
  return renderTable(
    ["idle rooms", "server", "RSS / room KB", "heap / room KB", "heap after all left MB", "errors"],
    servers.flatMap((name) => {
      const idle = results.idle!.get(name);
      if (!idle) return [];
      return [[
        name === servers[0] ? `${results.idleRooms} rooms × ${results.idleClients} clients` : "",
        name,
        kb(idle.perRoomBytes),
        kb(idle.perRoomHeapBytes),
        formatMb(idle.leftHeapBytes),
        String(idle.result.errors),
      ]];
    }),
    new Set([2, 3, 4, 5]),
  );
}

function joinTable(results: BenchResults): string {
  const { servers } = results;
  return renderTable(
    [
      `${formatCount(results.shapes)}-shape room`,
      "server",
      "cold join p50/max ms",
      "warm join p50/max ms",
      "reply MB",
      "RSS / room MB",
      "heap / room MB",
      "errors",
    ],
    servers.flatMap((name) => {
      const j = results.joins!.get(name);
      if (!j) return [];
      return [[
        name === servers[0] ? `${results.memoryRooms} rooms, connect → connect reply` : "",
        name,
        `${formatMs(j.result.coldJoin!.p50)}/${formatMs(j.result.coldJoin!.max)}`,
        `${formatMs(j.result.warmJoin!.p50)}/${formatMs(j.result.warmJoin!.max)}`,
        formatMb(j.result.joinReplyChars ?? 0),
        formatMb(j.perRoomBytes),
        formatMb(j.perRoomHeapBytes),
        String(j.result.errors),
      ]];
    }),
    new Set([2, 3, 4, 5, 6, 7]),
  );
}

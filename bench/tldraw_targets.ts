/**
 * The tldraw benchmark's targets (issues 3 and 17), judged on one round and summarised over several:
 * on a shared 2-core machine one round's verdict swings with background load, so `--rounds=N`
 * reports each target's value per round, its median and range, and how many rounds met it.
 *
 * @module
 */
import { formatCount, formatMb, formatMs, renderTable } from "./report_table.ts";
import type { BenchResults } from "./tldraw_report.ts";

/** One target judged on one round: `value` against `limit` (`undefined`: not measured). */
export interface TargetCheck {
  issue: 3 | 17;
  /** What is compared, the same in every round (e.g. `100r CPU ÷ reference`). */
  name: string;
  value: number | undefined;
  limit: number;
  /** `true`: met when `value ≥ limit`; otherwise when `value ≤ limit`. */
  atLeast: boolean;
  /** How `value` is shown: a ratio (`×`) or milliseconds. */
  unit: "×" | "ms";
  /** The round's numbers behind it (e.g. `42% vs 22%`). */
  detail: string;
}

/** Whether `check` was met (`undefined`: not measured). */
export function met(check: TargetCheck): boolean | undefined {
  if (check.value === undefined) return undefined;
  return check.atLeast ? check.value >= check.limit : check.value <= check.limit;
}

/** Every target of one round, in report order. */
export function checkTargets(results: BenchResults): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const steady = (key: string, name: string) =>
    results.steady.find((s) => s.key === key)?.results.get(name);
  const orUnknown = (format: (value: number) => string) => (value: number | undefined) =>
    value === undefined ? "?" : format(value);
  const ms = orUnknown((value) => `${formatMs(value)} ms`);
  const percent = orUnknown((value) => `${value.toFixed(0)}%`);
  const mb = orUnknown((value) => `${formatMb(value)} MB`);
  const perSec = orUnknown((value) => `${formatCount(value)} push/s`);
  /** Ours against another server's number: their ratio is the value. */
  const versus = (
    issue: 3 | 17,
    name: string,
    [ours, other]: [number | undefined, number | undefined],
    limit: number,
    atLeast: boolean,
    show: (value: number | undefined) => string,
  ) =>
    checks.push({
      issue,
      name,
      value: ours !== undefined && other !== undefined && other > 0 ? ours / other : undefined,
      limit,
      atLeast,
      unit: "×",
      detail: `${show(ours)} vs ${show(other)}`,
    });
  /** One of our numbers against a limit in milliseconds. */
  const atMost = (issue: 3 | 17, name: string, value: number | undefined, limit: number) =>
    checks.push({ issue, name, value, limit, atLeast: false, unit: "ms", detail: ms(value) });

  const o50 = steady("50x10", "ours");
  const fanoutP99 = (key: string): [number | undefined, number | undefined] => [
    steady(key, "ours")?.phase.fanout.p99,
    steady(key, "reference")?.phase.fanout.p99,
  ];
  versus(3, "1×50×10/s fan-out p99 ÷ reference", fanoutP99("50x10"), 0.5, false, ms);
  atMost(3, "1×50×10/s fan-out p50", o50?.phase.fanout.p50, 5);
  const cpu = (key: string): [number | undefined, number | undefined] => [
    steady(key, "ours")?.cpuPercent,
    steady(key, "reference")?.cpuPercent,
  ];
  versus(3, "1×50×30 presence CPU ÷ reference", cpu("50x30p"), 0.5, false, percent);
  const sat = results.saturation;
  const best = (name: string) =>
    sat?.has(name) ? sat.get(name)?.best?.phase.offeredPerSec ?? 0 : undefined;
  versus(3, "saturation ÷ reference", [best("ours"), best("reference")], 1.5, true, perSec);
  const oJ = results.joins?.get("ours"), rJ = results.joins?.get("reference");
  const coldJoin: [number | undefined, number | undefined] = [
    oJ?.result.coldJoin?.p50,
    rJ?.result.coldJoin?.p50,
  ];
  versus(3, "cold join p50 ÷ reference (no slower)", coldJoin, 1, false, ms);

  versus(17, "100×5×2/s server CPU ÷ reference", cpu("100r"), 1, false, percent);
  versus(17, "100×5×2/s fan-out p99 ÷ reference", fanoutP99("100r"), 0.5, false, ms);
  const rss: [number | undefined, number | undefined] = [oJ?.perRoomBytes, rJ?.perRoomBytes];
  versus(17, `RSS per ${results.shapes}-shape room ÷ reference`, rss, 1, false, mb);
  versus(17, "cold join p50 ÷ reference", coldJoin, 0.5, false, ms);
  for (const name of results.servers.filter((n) => /^ours-kv\d+$/.test(n))) {
    atMost(17, `${name}: 1×50×10/s push→ack p50`, steady("50x10", name)?.phase.ack.p50, 25);
    const sustained: [number | undefined, number | undefined] = [best(name), best("ours")];
    versus(17, `${name}: saturation ÷ ours without delay`, sustained, 0.7, true, perSec);
  }
  return checks;
}

/** A check's value as shown (`0.52×`, `23 ms`). */
function shown(check: Pick<TargetCheck, "unit">, value: number | undefined): string {
  if (value === undefined) return "?";
  return check.unit === "×" ? `${value.toFixed(2)}×` : `${formatMs(value)} ms`;
}

/** The target, as a sentence: `100×5×2/s server CPU ÷ reference ≤ 1.00×`. */
function goal(check: TargetCheck): string {
  return `${check.name} ${check.atLeast ? "≥" : "≤"} ${shown(check, check.limit)}`;
}

/** One round's verdicts: a `MET` / `MISS` / `n/a` line per target, grouped by issue. */
export function renderTargets(checks: readonly TargetCheck[]): string {
  return ([3, 17] as const).map((issue) =>
    `targets (issue ${issue}):\n` + checks.filter((c) => c.issue === issue).map((check) => {
      const ok = met(check);
      const verdict = ok === undefined ? "n/a " : ok ? "MET " : "MISS";
      return `  ${verdict}  ${goal(check)}: ${shown(check, check.value)} (${check.detail})`;
    }).join("\n")
  ).join("\n\n");
}

/** The median of `values` (sorted copy; the mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * Several rounds' verdicts side by side: per target its value in each round (`*` where missed), the
 * median and range over the rounds that measured it, how many rounds met it, and whether the
 * median does.
 */
export function renderRoundsSummary(rounds: readonly (readonly TargetCheck[])[]): string {
  const first = rounds[0] ?? [];
  const rows = first.flatMap((template, index) => {
    const checks = rounds.map((round) => round[index]);
    const values = checks.flatMap((c) => (c?.value === undefined ? [] : [c.value]));
    if (values.length === 0) return []; // not measured (scenario left out)
    const mid = values.length ? median(values) : undefined;
    const midMet = mid === undefined ? undefined : met({ ...template, value: mid });
    return [[
      `${template.issue}`,
      goal(template),
      checks.map((c) => (c ? shown(c, c.value) + (met(c) === false ? "*" : "") : "?").padEnd(8))
        .join(" ").trimEnd(),
      shown(template, mid),
      values.length
        ? `${shown(template, Math.min(...values))}–${shown(template, Math.max(...values))}`
        : "?",
      `${checks.filter((c) => c && met(c)).length}/${values.length}`,
      midMet === undefined ? "n/a" : midMet ? "MET" : "MISS",
    ]];
  });
  return `targets over ${rounds.length} rounds (* missed in that round):\n` + renderTable(
    ["issue", "target", "per round", "median", "range", "met", "median"],
    rows,
    new Set([3, 4, 5]),
  );
}

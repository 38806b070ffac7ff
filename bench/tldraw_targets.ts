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
  const ratio = (a: number | undefined, b: number | undefined) =>
    a !== undefined && b !== undefined && b > 0 ? a / b : undefined;
  const ms = (value: number | undefined) => value === undefined ? "?" : formatMs(value);
  const add = (check: TargetCheck) => checks.push(check);

  const o50 = steady("50x10", "ours"), r50 = steady("50x10", "reference");
  add({
    issue: 3,
    name: "1×50×10/s fan-out p99 ÷ reference",
    value: ratio(o50?.phase.fanout.p99, r50?.phase.fanout.p99),
    limit: 0.5,
    atLeast: false,
    unit: "×",
    detail: `${ms(o50?.phase.fanout.p99)} vs ${ms(r50?.phase.fanout.p99)} ms`,
  });
  add({
    issue: 3,
    name: "1×50×10/s fan-out p50",
    value: o50?.phase.fanout.p50,
    limit: 5,
    atLeast: false,
    unit: "ms",
    detail: `${ms(o50?.phase.fanout.p50)} ms`,
  });
  const oP = steady("50x30p", "ours"), rP = steady("50x30p", "reference");
  add({
    issue: 3,
    name: "1×50×30 presence CPU ÷ reference",
    value: ratio(oP?.cpuPercent, rP?.cpuPercent),
    limit: 0.5,
    atLeast: false,
    unit: "×",
    detail: `${oP?.cpuPercent.toFixed(0) ?? "?"}% vs ${rP?.cpuPercent.toFixed(0) ?? "?"}%`,
  });
  const sat = results.saturation;
  const best = (name: string) =>
    sat?.has(name) ? sat.get(name)?.best?.phase.offeredPerSec ?? 0 : undefined;
  const count = (value: number | undefined) => value === undefined ? "?" : formatCount(value);
  add({
    issue: 3,
    name: "saturation ÷ reference",
    value: ratio(best("ours"), best("reference")),
    limit: 1.5,
    atLeast: true,
    unit: "×",
    detail: `${count(best("ours"))} vs ${count(best("reference"))} push/s`,
  });
  const joins = results.joins;
  const oJ = joins?.get("ours"), rJ = joins?.get("reference");
  const cold = (value: number | undefined, reference: number | undefined) =>
    `${ms(value)} vs ${ms(reference)} ms (p50)`;
  add({
    issue: 3,
    name: "cold join ÷ reference (no slower)",
    value: ratio(oJ?.result.coldJoin?.p50, rJ?.result.coldJoin?.p50),
    limit: 1,
    atLeast: false,
    unit: "×",
    detail: cold(oJ?.result.coldJoin?.p50, rJ?.result.coldJoin?.p50),
  });

  const o100 = steady("100r", "ours"), r100 = steady("100r", "reference");
  add({
    issue: 17,
    name: "100×5×2/s server CPU ÷ reference",
    value: ratio(o100?.cpuPercent, r100?.cpuPercent),
    limit: 1,
    atLeast: false,
    unit: "×",
    detail: `${o100?.cpuPercent.toFixed(0) ?? "?"}% vs ${r100?.cpuPercent.toFixed(0) ?? "?"}%`,
  });
  add({
    issue: 17,
    name: "100×5×2/s fan-out p99 ÷ reference",
    value: ratio(o100?.phase.fanout.p99, r100?.phase.fanout.p99),
    limit: 0.5,
    atLeast: false,
    unit: "×",
    detail: `${ms(o100?.phase.fanout.p99)} vs ${ms(r100?.phase.fanout.p99)} ms`,
  });
  const mb = (bytes: number | undefined) => bytes === undefined ? "?" : formatMb(bytes);
  add({
    issue: 17,
    name: `RSS per ${results.shapes}-shape room ÷ reference`,
    value: ratio(oJ?.perRoomBytes, rJ?.perRoomBytes),
    limit: 1,
    atLeast: false,
    unit: "×",
    detail: `${mb(oJ?.perRoomBytes)} vs ${mb(rJ?.perRoomBytes)} MB`,
  });
  add({
    issue: 17,
    name: "cold join ÷ reference",
    value: ratio(oJ?.result.coldJoin?.p50, rJ?.result.coldJoin?.p50),
    limit: 0.5,
    atLeast: false,
    unit: "×",
    detail: cold(oJ?.result.coldJoin?.p50, rJ?.result.coldJoin?.p50),
  });
  for (const name of results.servers.filter((n) => /^ours-kv\d+$/.test(n))) {
    const o = steady("50x10", name);
    add({
      issue: 17,
      name: `${name}: 1×50×10/s push→ack p50`,
      value: o?.phase.ack.p50,
      limit: 25,
      atLeast: false,
      unit: "ms",
      detail: `${ms(o?.phase.ack.p50)} ms`,
    });
    add({
      issue: 17,
      name: `${name}: saturation ÷ ours without delay`,
      value: ratio(best(name), best("ours")),
      limit: 0.7,
      atLeast: true,
      unit: "×",
      detail: `${count(best(name))} vs ${count(best("ours"))} push/s`,
    });
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

/**
 * Plain-text tables for benchmark reports (fixed-width columns, left-aligned labels, right-aligned
 * numbers), and the number formats the tldraw benchmark uses.
 *
 * @module
 */
import type { LatencySummary } from "./load_spec.ts";

/** Renders rows under a header; columns listed in `rightAligned` (indexes) are right-aligned. */
export function renderTable(
  header: string[],
  rows: string[][],
  rightAligned: ReadonlySet<number>,
): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells.map((cell, i) =>
      rightAligned.has(i) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)
    ).join("  ").trimEnd();
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

/** `p50/p99/max` in ms with one decimal under 10 ms. */
export function formatLatency(summary: LatencySummary | undefined): string {
  if (!summary || summary.count === 0) return "–";
  return [summary.p50, summary.p99, summary.max].map(formatMs).join("/");
}

/** Milliseconds, one decimal under 10. */
export function formatMs(ms: number): string {
  return ms < 10 ? ms.toFixed(1) : ms.toFixed(0);
}

/** A count with thousands separators. */
export function formatCount(value: number): string {
  return Math.round(value).toLocaleString("en-US");
}

/** Bytes as MB with one decimal. */
export function formatMb(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(1);
}

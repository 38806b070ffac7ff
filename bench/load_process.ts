/**
 * Runs one load-generator task (`load_client.ts`) in its own process and follows its marks, so the
 * benchmark can read the server's CPU and memory at the edges of each measured window.
 *
 * @module
 */
import type { LoadReport, LoadResult, LoadSpec } from "./load_spec.ts";
import { readLines } from "./server_process.ts";

const ENTRY = new URL("./load_client.ts", import.meta.url);
/** Longer than any default scenario (the saturation ramp of a fast server takes about a minute). */
const DEFAULT_TIMEOUT_MS = 240_000;

/**
 * Runs `spec`; `onMark` is awaited at each mark while the generator waits (keep it short: load
 * keeps flowing meanwhile). Rejects if the generator fails or runs longer than `timeoutMs`.
 */
export async function runLoad(
  spec: LoadSpec,
  onMark: (name: string) => void | Promise<void> = () => {},
  timeoutMs = DEFAULT_TIMEOUT_MS,
): Promise<LoadResult> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "-q", ENTRY.pathname, JSON.stringify(spec)],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  // On a thrashing shared machine a run can crawl for many minutes; give up on it instead.
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }, timeoutMs);
  const stdin = child.stdin.getWriter();
  const ack = new TextEncoder().encode("\n");
  let result: LoadResult | undefined;
  for await (const line of readLines(child.stdout)) {
    let report: LoadReport;
    try {
      report = JSON.parse(line) as LoadReport;
    } catch {
      console.error(`[load] ${line}`);
      continue;
    }
    if ("mark" in report) {
      await onMark(report.mark);
      await stdin.write(ack);
    } else {
      result = report.result;
    }
  }
  await stdin.close().catch(() => {});
  const status = await child.status;
  clearTimeout(timer);
  if (timedOut) throw new Error(`load generator timed out after ${timeoutMs / 1000} s`);
  if (!result) throw new Error(`load generator failed (exit ${status.code})`);
  // What the errors column counts, so that a run's errors can be told apart.
  if (result.errorNotes.length > 0) console.error(`[load] errors: ${result.errorNotes.join(", ")}`);
  return result;
}

/**
 * The web app's weight and speed in a real browser: `deno task bench web` (needs Chromium: Debian's
 * `/usr/bin/chromium` or `CHROMIUM_PATH`; skipped without it).
 *
 * Builds the page (`web/build.ts`) and serves it from our server (`our_server.ts`, `WEB_DIR`), then
 * opens it in fresh browser contexts (a cold cache each time) and reports, as medians over
 * `--runs` (default 7): the page's JavaScript and CSS bytes (raw and gzip), the home page's `load`
 * event, and the editor's time to interactive: from navigating to a new room's page until the
 * board reports `online` (the document synced, the editor ready for input).
 *
 * With `BENCH_BASELINE_DIR=<checkout>` (e.g. `git worktree add /tmp/base <commit>`) that checkout's
 * page is built and measured too, served by the same server code, alternating which goes first.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { chromium } from "npm:playwright-core@1.65.1";
import { ServerProcess } from "./server_process.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { runs: { type: "string", default: "7" } },
});
const RUNS = Number(values.runs);
const CHROMIUM = Deno.env.get("CHROMIUM_PATH") || "/usr/bin/chromium";
const ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname);

interface Build {
  name: string;
  dir: string;
  jsBytes: number;
  jsGzip: number;
  cssBytes: number;
}

async function build(name: string, checkout: string, out: string): Promise<Build> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--config",
      `${checkout}/web/deno.json`,
      `${checkout}/web/build.ts`,
      "--out",
      out,
    ],
    cwd: checkout,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!output.success) throw new Error(new TextDecoder().decode(output.stderr));
  let jsBytes = 0, jsGzip = 0, cssBytes = 0;
  for await (const entry of Deno.readDir(`${out}/assets`)) {
    const bytes = await Deno.readFile(`${out}/assets/${entry.name}`);
    if (entry.name.endsWith(".js")) {
      jsBytes += bytes.byteLength;
      jsGzip += await gzipSize(bytes);
    } else if (entry.name.endsWith(".css")) cssBytes += bytes.byteLength;
  }
  return { name, dir: out, jsBytes, jsGzip, cssBytes };
}

async function gzipSize(bytes: Uint8Array): Promise<number> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream()
    .pipeThrough(new CompressionStream("gzip"));
  return (await new Response(stream).arrayBuffer()).byteLength;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

if (import.meta.main) {
  try {
    await Deno.stat(CHROMIUM);
  } catch {
    console.log(`web bench skipped: no Chromium at ${CHROMIUM}`);
    Deno.exit(0);
  }
  const temp = await Deno.makeTempDir({ prefix: "web_bench_" });
  const baseline = Deno.env.get("BENCH_BASELINE_DIR");
  const builds = [await build("ours", ROOT, `${temp}/ours`)];
  if (baseline) builds.push(await build("baseline", Deno.realPathSync(baseline), `${temp}/base`));

  const servers = await Promise.all(builds.map((b) =>
    ServerProcess.start({
      name: b.name,
      entry: new URL("./our_server.ts", import.meta.url),
      env: { DATA_DIR: `${temp}/data-${b.name}`, BENCH_WEB_DIR: b.dir },
    })
  ));
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
  });
  const load = new Map<string, number[]>(builds.map((b) => [b.name, []]));
  const interactive = new Map<string, number[]>(builds.map((b) => [b.name, []]));
  try {
    for (let run = 0; run < RUNS; run++) {
      const order = run % 2 === 0 ? servers : [...servers].reverse();
      for (const server of order) {
        const url = `http://127.0.0.1:${server.port}`;
        // A new context: nothing cached.
        const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
        const page = await context.newPage();
        let started = performance.now();
        await page.goto(`${url}/`, { waitUntil: "load" });
        load.get(server.name)!.push(performance.now() - started);
        await context.close();

        const fresh = await browser.newContext({ viewport: { width: 1200, height: 800 } });
        const board = await fresh.newPage();
        started = performance.now();
        await board.goto(`${url}/#/r/bench-${crypto.randomUUID().slice(0, 8)}`);
        await board.locator('[data-sync-status="online"]').waitFor({ timeout: 30_000 });
        await board.locator(".tl-canvas").waitFor({ timeout: 30_000 });
        interactive.get(server.name)!.push(performance.now() - started);
        await fresh.close();
      }
    }
  } finally {
    await browser.close();
    await Promise.all(servers.map((s) => s.stop()));
    await Deno.remove(temp, { recursive: true }).catch(() => {});
  }

  console.log(`\nweb app, cold cache, median of ${RUNS} (range)`);
  console.log(
    "build     JS KB   JS gzip KB  CSS KB  home load ms       editor interactive ms",
  );
  const range = (values: number[]) =>
    `${median(values).toFixed(0)} (${Math.min(...values).toFixed(0)}–${
      Math.max(...values).toFixed(0)
    })`;
  for (const b of builds) {
    console.log(
      `${b.name.padEnd(9)} ${(b.jsBytes / 1024).toFixed(0).padStart(5)}   ${
        (b.jsGzip / 1024).toFixed(0).padStart(10)
      }  ${(b.cssBytes / 1024).toFixed(0).padStart(6)}  ${range(load.get(b.name)!).padEnd(18)} ${
        range(interactive.get(b.name)!)
      }`,
    );
  }
}

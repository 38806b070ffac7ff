/**
 * A benchmark target running in its own process (so its CPU and memory can be read from `/proc`):
 * spawns `our_server.ts` or `reference_server.ts`, waits for its `ready` line, and offers GC, CPU,
 * RSS, an "idle" wait between scenarios and a clean stop (SIGTERM, so `--cpu-prof` gets written).
 *
 * @module
 */
import { cpuSeconds, mainThreadCpuSeconds, rssBytes } from "./proc_stats.ts";
import type { ServerAnnouncement } from "./server_control.ts";

/** How a server process is started. */
export interface ServerProcessOptions {
  /** Label in the report (`ours`, `reference`). */
  name: string;
  /** The entry module. */
  entry: URL;
  env?: Record<string, string>;
  /** Extra `deno run` flags (e.g. `--cpu-prof`). */
  denoFlags?: string[];
}

const STOP_GRACE_MS = 15_000;
/** Stderr lines printed before the rest are only counted (a struggling server can log a lot). */
const STDERR_ECHO_LIMIT = 5;

/** A running server process. */
export class ServerProcess {
  readonly name: string;
  readonly pid: number;
  readonly port: number;
  readonly #controlPort: number;
  readonly #child: Deno.ChildProcess;
  /** Lines the server wrote to stderr (warnings, errors). */
  stderrLines = 0;

  private constructor(
    name: string,
    child: Deno.ChildProcess,
    announcement: ServerAnnouncement,
  ) {
    this.name = name;
    this.#child = child;
    this.pid = child.pid;
    this.port = announcement.port;
    this.#controlPort = announcement.controlPort;
  }

  /** Starts the process and resolves once it announced its ports. */
  static async start(options: ServerProcessOptions): Promise<ServerProcess> {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        // Quiet: Deno's own diagnostics (downloads, peer-dependency warnings) are not server logs.
        "-q",
        "--v8-flags=--expose-gc",
        ...(options.denoFlags ?? []),
        options.entry.pathname,
      ],
      env: options.env ?? {},
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const lines = readLines(child.stdout);
    let announcement: ServerAnnouncement | undefined;
    // Not `for await … break`: breaking out would end the generator, and stdout would no longer be
    // drained (a server printing more, e.g. with `--trace-gc`, would then block on a full pipe).
    while (!announcement) {
      const next = await lines.next();
      if (next.done) break;
      try {
        announcement = (JSON.parse(next.value) as { ready?: ServerAnnouncement }).ready;
      } catch {
        // a log line before the announcement
      }
    }
    if (!announcement) throw new Error(`${options.name}: exited before announcing its port`);
    const server = new ServerProcess(options.name, child, announcement);
    // Keep both pipes drained so the server never blocks on a full pipe.
    // `BENCH_SERVER_STDOUT=<prefix>`: each server's stdout also goes to `<prefix>.<name>` (e.g. V8's
    // `--trace-gc` lines, with `BENCH_BASELINE_ENV=DENO_V8_FLAGS=--trace-gc`).
    const copyTo = Deno.env.get("BENCH_SERVER_STDOUT");
    void (async () => {
      for await (const line of lines) {
        if (copyTo) {
          await Deno.writeTextFile(`${copyTo}.${options.name}`, `${line}\n`, { append: true });
        }
      }
    })();
    void (async () => {
      for await (const line of readLines(child.stderr)) {
        if (++server.stderrLines <= STDERR_ECHO_LIMIT) {
          console.error(`[${options.name}] ${line.slice(0, 300)}`);
        }
      }
    })();
    return server;
  }

  /** `ws://127.0.0.1:<port>` */
  get url(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  cpuSeconds(): number {
    return cpuSeconds(this.pid);
  }

  /** CPU seconds of the JavaScript (main) thread. */
  mainThreadCpuSeconds(): number {
    return mainThreadCpuSeconds(this.pid);
  }

  rssBytes(): number {
    return rssBytes(this.pid);
  }

  /** Full GC in the server (so memory readings are comparable); returns its V8 heap in use (bytes). */
  async gc(): Promise<number> {
    const response = await fetch(`http://127.0.0.1:${this.#controlPort}/gc`, { method: "POST" });
    if (!response.ok) {
      await response.body?.cancel();
      throw new Error(`${this.name}: gc failed (${response.status})`);
    }
    return ((await response.json()) as Deno.MemoryUsage).heapUsed;
  }

  /**
   * Waits until the server uses under 5% of a core over 250 ms (finishing the previous scenario's
   * session removals and unloads), at most `maxMs`.
   */
  async waitIdle(maxMs: number): Promise<void> {
    const until = performance.now() + maxMs;
    while (performance.now() < until) {
      const before = this.cpuSeconds();
      await new Promise((resolve) => setTimeout(resolve, 250));
      if (this.cpuSeconds() - before < 0.0125) return;
    }
  }

  /** SIGTERM, then SIGKILL if it does not exit in time. */
  async stop(): Promise<void> {
    try {
      this.#child.kill("SIGTERM");
    } catch {
      return; // already gone
    }
    const timer = setTimeout(() => {
      try {
        this.#child.kill("SIGKILL");
      } catch {
        // exited meanwhile
      }
    }, STOP_GRACE_MS);
    await this.#child.status;
    clearTimeout(timer);
  }
}

/** Lines of a byte stream. */
export async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buffer = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    buffer += text;
    for (let end = buffer.indexOf("\n"); end >= 0; end = buffer.indexOf("\n")) {
      yield buffer.slice(0, end);
      buffer = buffer.slice(end + 1);
    }
  }
  if (buffer) yield buffer;
}

/**
 * The server as a separate process (`deno run -A main.ts`, what `deno task start` runs), for tests
 * that kill it for real. Its port is read from its "listening" log line.
 *
 * @module
 */

const ROOT = new URL("../../", import.meta.url);

/** A server process. */
export interface ServerProcess {
  port: number;
  child: Deno.ChildProcess;
  /** `kill -9`: no drain, no clean-up. */
  kill(): Promise<void>;
  /** SIGINT (graceful shutdown), then waits for the exit. */
  stop(): Promise<void>;
}

/** Starts a server process with `env` (PORT=0 and LOG_LEVEL=info are added) and waits for it. */
export async function startServerProcess(env: Record<string, string>): Promise<ServerProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts"],
    cwd: ROOT,
    env: { PORT: "0", LOG_LEVEL: "info", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const { promise: port, resolve: resolvePort, reject: rejectPort } = Promise.withResolvers<
    number
  >();
  // Keep reading stdout for the whole life of the process (a full pipe would block it).
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
          if (record.msg === "listening" && typeof record.port === "number") {
            resolvePort(record.port);
          }
        } catch {
          // not a log line
        }
      }
    }
    rejectPort(new Error("server process exited before listening"));
  })();
  const exited = Promise.all([child.status, reading]).then(() => {});
  const timer = setTimeout(() => rejectPort(new Error("server process did not start")), 60_000);
  try {
    const bound = await port;
    return {
      port: bound,
      child,
      kill: async () => {
        try {
          child.kill("SIGKILL");
        } catch {
          // already gone
        }
        await exited;
      },
      stop: async () => {
        try {
          child.kill("SIGINT");
        } catch {
          // already gone
        }
        await exited;
      },
    };
  } catch (error) {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
    await exited;
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

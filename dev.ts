/**
 * `deno task dev`: the server in development mode plus the web app's build, both restarted as
 * sources change, in one command that needs nothing but Deno.
 *
 * - The web build (`web/build.ts --watch`) runs as a child process; it installs the app's packages
 *   with Deno on its first run.
 * - The server (`main.ts --dev`, with any arguments given here, e.g. `--isolates 3`) runs as a
 *   child process and is restarted when a server source file changes.
 * - A server that stops on a start-up problem a person must fix (a port in use, a database that
 *   cannot be reached, a bad variable: exit code 78) stops the whole command, instead of waiting for
 *   a file change that would not help; a server that crashes later waits for the next change.
 *
 * @module
 */
import { EXIT_STARTUP_PROBLEM } from "./config.ts";

const ROOT = decodeURIComponent(new URL(".", import.meta.url).pathname);

/** What the server is built from: a change under any of these restarts it. */
const SERVER_SOURCES = [
  "main.ts",
  "config.ts",
  "log.ts",
  "metrics.ts",
  "telemetry.ts",
  "isolates.ts",
  "isolate_worker.ts",
  "routes",
  "sync",
  "db",
  "migrations",
];

/** Changes arriving within this many ms of each other restart the server once. */
const DEBOUNCE_MS = 150;

function say(message: string): void {
  console.error(`dev: ${message}`);
}

function spawn(args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
}

function stop(child: Deno.ChildProcess): Promise<Deno.CommandStatus> {
  try {
    child.kill("SIGTERM");
  } catch {
    // Already gone.
  }
  return child.status;
}

/** The server child and whether this launcher stopped it (a restart) or it stopped by itself. */
type ServerState =
  | { phase: "running"; child: Deno.ChildProcess }
  | { phase: "restarting" }
  | { phase: "crashed" };

async function main(): Promise<void> {
  const web = spawn(["run", "-A", "--config", "web/deno.json", "web/build.ts", "--watch"]);
  let server: ServerState = { phase: "restarting" };
  let finishing = false;

  const finish = async (code: number) => {
    if (finishing) return;
    finishing = true;
    const children = [web, ...(server.phase === "running" ? [server.child] : [])];
    await Promise.all(children.map(stop));
    Deno.exit(code);
  };

  const startServer = () => {
    const child = spawn(["run", "-A", "main.ts", "--dev", ...Deno.args]);
    server = { phase: "running", child };
    child.status.then((status) => {
      if (finishing || server.phase !== "running" || server.child !== child) return;
      if (status.code === EXIT_STARTUP_PROBLEM) {
        say("stopped: fix the problem above, then run `deno task dev` again");
        void finish(status.code);
        return;
      }
      server = { phase: "crashed" };
      say(`the server exited (code ${status.code}); it restarts when a source file changes`);
    });
  };

  // One restart at a time: a change arriving during a restart queues another.
  let restarts = Promise.resolve();
  const restart = (changed: string) => {
    restarts = restarts.then(async () => {
      const previous = server;
      server = { phase: "restarting" };
      say(`${changed} changed: restarting the server`);
      if (previous.phase === "running") await stop(previous.child);
      if (!finishing) startServer();
    });
  };

  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => void finish(0));
  }
  web.status.then((status) => {
    if (!finishing && !status.success) say(`the web build stopped (code ${status.code})`);
  });

  startServer();
  const watcher = Deno.watchFs(SERVER_SOURCES.map((path) => `${ROOT}${path}`));
  let timer: ReturnType<typeof setTimeout> | undefined;
  for await (const event of watcher) {
    if (!event.paths.some((path) => /\.(ts|sql)$/.test(path))) continue;
    const changed = event.paths[0]!.slice(ROOT.length);
    clearTimeout(timer);
    timer = setTimeout(() => restart(changed), DEBOUNCE_MS);
  }
}

if (import.meta.main) await main();

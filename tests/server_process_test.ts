/**
 * The server as users run it: `deno task start` in a child process, on a free port, with its own data
 * directory. Also the migrate CLI.
 */
import assert from "node:assert/strict";
import { EXIT_STARTUP_PROBLEM } from "../config.ts";
import { openTestDatabase, TEST_DATABASE_URL } from "./helpers/db.ts";

const ROOT = new URL("../", import.meta.url);

function denoTask(args: string[], env: Record<string, string>) {
  return new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

/** Reads JSON log lines from `stream` until `predicate` matches one; returns it and all lines seen. */
async function waitForLog(
  reader: ReadableStreamDefaultReader<string>,
  seen: Record<string, unknown>[],
  predicate: (line: Record<string, unknown>) => boolean,
): Promise<Record<string, unknown>> {
  let buffer = "";
  while (true) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`stream ended; lines seen: ${JSON.stringify(seen)}`);
    buffer += value;
    const lines = buffer.split("\n");
    buffer = lines.pop()!;
    for (const line of lines) {
      if (!line.startsWith("{")) continue;
      const record = JSON.parse(line);
      seen.push(record);
      if (predicate(record)) return record;
    }
  }
}

async function databaseEnv(): Promise<
  { env: Record<string, string>; cleanup: () => Promise<void> }
> {
  if (!TEST_DATABASE_URL) return { env: {}, cleanup: async () => {} };
  const database = await openTestDatabase({ migrated: false });
  return {
    env: { DATABASE_URL: database.url! },
    cleanup: async () => await database[Symbol.asyncDispose](),
  };
}

Deno.test("deno task start serves /health on a free port and shuts down cleanly on SIGTERM", async () => {
  const dataDir = await Deno.makeTempDir();
  const { env, cleanup } = await databaseEnv();
  try {
    const child = denoTask(["start"], { PORT: "0", DATA_DIR: dataDir, ...env }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    const seen: Record<string, unknown>[] = [];
    const listening = await waitForLog(reader, seen, (l) => l.msg === "listening");
    const port = listening.port as number;
    assert.ok(port > 0);

    const health = await fetch(`http://127.0.0.1:${port}/health`);
    assert.equal(health.status, 200);
    assert.equal((await health.json()).status, "ok");

    child.kill("SIGTERM");
    await waitForLog(reader, seen, (l) => l.msg === "shutdown complete");
    while (!(await reader.read()).done) {
      // Drain the rest of stdout until the process closes it.
    }
    const [status, stderr] = await Promise.all([child.status, new Response(child.stderr).text()]);
    assert.equal(status.code, 0, stderr);
    assert.ok(seen.some((l) => l.msg === "shutting down" && l.reason === "SIGTERM"));
    // Migrations ran on start-up against the configured database.
    assert.ok(seen.some((l) => l.msg === "migrations applied"));
  } finally {
    await cleanup();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("a bad PORT stops start-up with a message naming the variable", async () => {
  const output = await denoTask(["start"], { PORT: "not-a-port" }).output();
  assert.equal(output.code, EXIT_STARTUP_PROBLEM);
  const stderr = new TextDecoder().decode(output.stderr);
  assert.match(stderr, /Invalid configuration:\n\s+PORT: expected a whole number/);
});

Deno.test("a malformed DATABASE_URL stops start-up with a message naming the variable", async () => {
  const output = await denoTask(["start"], { DATABASE_URL: "mysql://root:secret@x/db" }).output();
  assert.equal(output.code, EXIT_STARTUP_PROBLEM);
  const stderr = new TextDecoder().decode(output.stderr);
  assert.match(stderr, /DATABASE_URL: expected a URL like postgres:\/\//);
  assert.doesNotMatch(stderr, /secret/);
});

Deno.test("deno task migrate: --dry-run, apply, --status", async () => {
  const dataDir = await Deno.makeTempDir();
  const { env, cleanup } = await databaseEnv();
  try {
    const run = async (...args: string[]) => {
      const output = await denoTask(["migrate", ...args], { DATA_DIR: dataDir, ...env }).output();
      const text = new TextDecoder().decode(output.stdout) +
        new TextDecoder().decode(output.stderr);
      assert.equal(output.code, 0, text);
      return text;
    };
    assert.match(await run("--dry-run"), /would apply 001_initial_schema\.sql/);
    assert.match(await run("--status"), /pending\s+001_initial_schema\.sql/);
    assert.match(await run(), /applying 001_initial_schema\.sql/);
    assert.match(await run("--status"), /applied\s+001_initial_schema\.sql \d{4}-/);
    assert.match(await run(), /nothing to do/);
    const bad = await denoTask(["migrate", "--frobnicate"], { DATA_DIR: dataDir, ...env }).output();
    assert.equal(bad.code, 2);
  } finally {
    await cleanup();
    await Deno.remove(dataDir, { recursive: true });
  }
});

/**
 * `deno task dev` as a newcomer runs it, on a machine with nothing but Deno on PATH (no npm, no
 * Node): it installs the web app's packages with Deno, serves /health and the page, says which URL
 * to open, and stops on Ctrl+C. A port in use, or a database that cannot be reached, stops it at
 * once with a sentence that names the problem.
 */
import assert from "node:assert/strict";
import { freePort } from "./helpers/ports.ts";

const ROOT = new URL("../", import.meta.url);

/** A directory whose only program is `deno`: the PATH of a bare machine. */
async function denoOnlyPath(): Promise<{ path: string; [Symbol.asyncDispose](): Promise<void> }> {
  const path = await Deno.makeTempDir({ prefix: "deno_only_path_" });
  await Deno.symlink(Deno.execPath(), `${path}/deno`);
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }),
  };
}

/** What a fresh clone does not have: installed packages, builds, data, test output. */
const NOT_IN_A_CLONE = new Set([".git", "node_modules", ".data", "dist", "test-artifacts"]);

/**
 * A copy of this checkout as a fresh clone has it: its files without node_modules, builds or data
 * (copied by walking the tree: a bare machine has no git either).
 */
async function freshCheckout(): Promise<{ dir: string; [Symbol.asyncDispose](): Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix: "fresh_checkout_" });
  const copy = async (from: string, to: string) => {
    await Deno.mkdir(to, { recursive: true });
    for await (const entry of Deno.readDir(from)) {
      if (NOT_IN_A_CLONE.has(entry.name) || entry.name.startsWith(".install-lock")) continue;
      if (entry.isDirectory) await copy(`${from}/${entry.name}`, `${to}/${entry.name}`);
      else if (entry.isFile) await Deno.copyFile(`${from}/${entry.name}`, `${to}/${entry.name}`);
    }
  };
  await copy(decodeURIComponent(ROOT.pathname).replace(/\/$/, ""), dir);
  return { dir, [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }) };
}

/**
 * How this machine reaches the package registry (certificate authorities, proxies): a bare machine
 * has its network settings too, so they pass through the cleared environment.
 */
const NETWORK_SETTINGS = [
  "NODE_EXTRA_CA_CERTS",
  "DENO_CERT",
  "DENO_TLS_CA_STORE",
  "HTTPS_PROXY",
  "HTTP_PROXY",
  "NO_PROXY",
];

function networkEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of NETWORK_SETTINGS) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  return env;
}

/** `deno task dev` with a bare PATH, its output collected into one text. */
function startDev(bin: string, env: Record<string, string>, cwd: string | URL = ROOT) {
  const child = new Deno.Command(`${bin}/deno`, {
    args: ["task", "dev"],
    cwd,
    clearEnv: true,
    env: {
      PATH: bin,
      HOME: Deno.env.get("HOME") ?? "/tmp",
      NO_COLOR: "1",
      ...(Deno.env.get("DENO_DIR") ? { DENO_DIR: Deno.env.get("DENO_DIR")! } : {}),
      ...networkEnv(),
      ...env,
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let output = "";
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) output += text;
  };
  const reading = Promise.all([collect(child.stdout), collect(child.stderr)]);
  return {
    child,
    output: () => output,
    /** Waits until the output contains `text` (or the process exits, or the deadline passes). */
    async waitFor(text: string, timeoutMs: number): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      let exited = false;
      child.status.then(() => exited = true);
      while (!output.includes(text)) {
        if (exited) throw new Error(`exited before "${text}":\n${output}`);
        if (output.includes("dev: the web build stopped")) throw new Error(output);
        if (Date.now() > deadline) {
          throw new Error(`no "${text}" within ${timeoutMs} ms:\n${output}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    },
    /**
     * The exit status, once the output has ended too. A process the launcher left behind (it would
     * hold the output pipes open) fails the test instead of hanging it.
     */
    async finished(): Promise<Deno.CommandStatus> {
      const status = await child.status;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const ended = await Promise.race([
        reading.then(() => true),
        new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), 10_000)),
      ]);
      clearTimeout(timer);
      if (!ended) {
        throw new Error(`output still open 10 s after exit: a process was left running\n${output}`);
      }
      return status;
    },
  };
}

Deno.test("deno task dev on a bare machine and a fresh clone: serves /health and the page, stops on SIGINT", async () => {
  await using bin = await denoOnlyPath();
  await using checkout = await freshCheckout();
  const dataDir = await Deno.makeTempDir({ prefix: "dev_task_" });
  const port = freePort();
  const dev = startDev(bin.path, { DATA_DIR: dataDir, PORT: String(port) }, checkout.dir);
  try {
    await dev.waitFor(`ready: open http://127.0.0.1:${port}/`, 120_000);
    const health = await fetch(`http://127.0.0.1:${port}/health`);
    assert.equal(health.status, 200);
    assert.equal((await health.json()).status, "ok");
    // The first build of a fresh clone installs the app's packages with Deno.
    await dev.waitFor("web: installing the app's packages (first run only)", 120_000);
    await dev.waitFor("web: built", 180_000);
    const page = await fetch(`http://127.0.0.1:${port}/`);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<div id="root">/);
    // The first start says what it prepares, once.
    assert.match(dev.output(), /creating the embedded database \(first start only/);
    // Lines for people, not JSON.
    assert.match(
      dev.output(),
      /\d\d:\d\d:\d\d\.\d{3} INFO {2}listening url=http:\/\/127\.0\.0\.1:/,
    );
    assert.doesNotMatch(dev.output(), /spawn 'npm'|npm ERR/);
  } finally {
    dev.child.kill("SIGINT");
    const status = await dev.finished();
    await Deno.remove(dataDir, { recursive: true });
    assert.equal(status.code, 0, dev.output());
  }
});

Deno.test("deno task dev stops at once on a port in use, naming the port", async () => {
  await using bin = await denoOnlyPath();
  const dataDir = await Deno.makeTempDir({ prefix: "dev_task_" });
  using taken = Deno.listen({ port: 0, hostname: "127.0.0.1" });
  const port = (taken.addr as Deno.NetAddr).port;
  const dev = startDev(bin.path, { DATA_DIR: dataDir, PORT: String(port) });
  const status = await dev.finished();
  await Deno.remove(dataDir, { recursive: true });
  assert.equal(status.code, 78, dev.output());
  assert.match(dev.output(), new RegExp(`Port ${port} on 127\\.0\\.0\\.1 is already in use`));
  assert.match(dev.output(), /dev: stopped: fix the problem above/);
});

Deno.test("deno task dev stops at once when the database cannot be reached, saying where", async () => {
  await using bin = await denoOnlyPath();
  const dataDir = await Deno.makeTempDir({ prefix: "dev_task_" });
  const closedPort = freePort();
  const dev = startDev(bin.path, {
    DATA_DIR: dataDir,
    DATABASE_URL: `postgres://app@127.0.0.1:${closedPort}/app`,
    PORT: String(freePort()),
  });
  const status = await dev.finished();
  await Deno.remove(dataDir, { recursive: true });
  assert.equal(status.code, 78, dev.output());
  assert.match(
    dev.output(),
    new RegExp(`The database at 127\\.0\\.0\\.1:${closedPort} cannot be reached`),
  );
  assert.doesNotMatch(dev.output(), /migration 001/);
});

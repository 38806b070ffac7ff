/**
 * Installs a folder's npm packages with Deno itself (`deno install` into the folder's own
 * `node_modules`, from its committed `deno.lock`), once: a marker named after the hash of
 * `package.json` and `deno.lock` says the installed set is current, and an exclusive lock directory
 * makes concurrent callers (a dev server and a test, or parallel test files) wait for the first.
 * Nothing but Deno is needed: no npm, no Node. Used for the web app's build and for the real
 * clients and servers the tests run from npm (LiveStore, s3rver).
 *
 * @module
 */
// Runs under Deno, while the rest of the web project is type-checked for the browser.
/// <reference lib="deno.ns" />

/** Options for {@link ensurePackagesInstalled}. */
export interface InstallOptions {
  /** How long to wait for another caller's install before calling its lock stale. */
  timeoutMs?: number;
  /** Told once when an install actually starts (the first run of a fresh clone). */
  onInstall?: (dir: string) => void;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function manifestHash(dir: string): Promise<string> {
  const parts = await Promise.all(
    ["package.json", "deno.lock"].map((name) =>
      Deno.readFile(`${dir}${name}`).catch(() => new Uint8Array())
    ),
  );
  const joined = new Uint8Array(parts.reduce((sum, part) => sum + part.byteLength + 1, 0));
  let offset = 0;
  for (const part of parts) {
    joined.set(part, offset);
    offset += part.byteLength + 1;
  }
  const digest = await crypto.subtle.digest("SHA-256", joined);
  return [...new Uint8Array(digest).slice(0, 8)].map((b) => b.toString(16).padStart(2, "0"))
    .join("");
}

const installs = new Map<string, Promise<void>>();

/** Installs `dir`'s packages (a path ending in `/`) unless they match its manifest and lock. */
export function ensurePackagesInstalled(dir: string, options: InstallOptions = {}): Promise<void> {
  let install = installs.get(dir);
  if (!install) {
    install = installOnce(dir, options);
    installs.set(dir, install);
    install.catch(() => installs.delete(dir));
  }
  return install;
}

async function installOnce(dir: string, options: InstallOptions): Promise<void> {
  const marker = `${dir}node_modules/.installed-${await manifestHash(dir)}`;
  if (await exists(marker)) return;
  const lockDir = `${dir}.install-lock`;
  const deadline = Date.now() + (options.timeoutMs ?? 300_000);
  for (;;) {
    try {
      await Deno.mkdir(lockDir);
      await Deno.writeTextFile(`${lockDir}/owner`, String(Deno.pid));
      break;
    } catch (error) {
      if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
      // An install that was killed (Ctrl-C, a test stopping `deno task dev`) leaves its lock.
      if (await ownerIsGone(lockDir)) {
        await Deno.remove(lockDir, { recursive: true }).catch(() => {});
        continue;
      }
      if (Date.now() > deadline) throw new Error(`stale install lock ${lockDir}; remove it`);
      await new Promise((resolve) => setTimeout(resolve, 500));
      if (await exists(marker)) return;
    }
  }
  try {
    if (await exists(marker)) return;
    options.onInstall?.(dir);
    const output = await new Deno.Command(Deno.execPath(), {
      // --frozen: the committed lock file decides every version; an install never rewrites it.
      args: ["install", "--node-modules-dir=manual", "--frozen", "--quiet"],
      cwd: dir,
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!output.success) {
      throw new Error(
        `deno install in ${dir} failed:\n${new TextDecoder().decode(output.stderr)}`,
      );
    }
    await Deno.writeTextFile(marker, new Date().toISOString());
  } finally {
    await Deno.remove(lockDir, { recursive: true }).catch(() => {});
  }
}

/**
 * Whether the process that took `lockDir` has ended (Linux: its /proc entry is gone). Elsewhere the
 * lock is presumed held (and called stale after the deadline).
 */
async function ownerIsGone(lockDir: string): Promise<boolean> {
  const owner = await Deno.readTextFile(`${lockDir}/owner`).catch(() => undefined);
  if (owner === undefined) {
    // No pid written a minute after the lock was taken: a lock from before pids were written.
    const since = (await Deno.stat(lockDir).catch(() => undefined))?.mtime?.getTime();
    return since !== undefined && Date.now() - since > 60_000;
  }
  const pid = Number(owner);
  if (!Number.isInteger(pid) || pid <= 0 || !await exists("/proc/self")) return false;
  return !await exists(`/proc/${pid}`);
}

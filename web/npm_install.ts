/**
 * Installs a folder's npm packages from its committed lock file, once: a marker named after the lock
 * file's hash says the installed set is current, and an exclusive lock directory makes concurrent
 * callers (a dev server and a test, or parallel test files) wait for the first. Used for the web app's
 * build and for the real clients and servers the tests run from npm (LiveStore, s3rver).
 *
 * @module
 */

/** Options for {@link ensureNpmInstalled}. */
export interface NpmInstallOptions {
  /** npm arguments; default `["ci"]`. */
  args?: string[];
  /** How long to wait for another caller's install before calling its lock stale. */
  timeoutMs?: number;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function lockHash(dir: string): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    await Deno.readFile(`${dir}package-lock.json`),
  );
  return [...new Uint8Array(digest).slice(0, 8)].map((b) => b.toString(16).padStart(2, "0")).join(
    "",
  );
}

const installs = new Map<string, Promise<void>>();

/** Installs `dir`'s packages (a path ending in `/`) unless they match its package-lock.json. */
export function ensureNpmInstalled(dir: string, options: NpmInstallOptions = {}): Promise<void> {
  let install = installs.get(dir);
  if (!install) {
    install = installOnce(dir, options);
    installs.set(dir, install);
    install.catch(() => installs.delete(dir));
  }
  return install;
}

async function installOnce(dir: string, options: NpmInstallOptions): Promise<void> {
  const marker = `${dir}node_modules/.installed-${await lockHash(dir)}`;
  if (await exists(marker)) return;
  const lockDir = `${dir}.install-lock`;
  const deadline = Date.now() + (options.timeoutMs ?? 300_000);
  for (;;) {
    try {
      await Deno.mkdir(lockDir);
      break;
    } catch (error) {
      if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
      if (Date.now() > deadline) throw new Error(`stale install lock ${lockDir}; remove it`);
      await new Promise((resolve) => setTimeout(resolve, 500));
      if (await exists(marker)) return;
    }
  }
  try {
    if (await exists(marker)) return;
    const output = await new Deno.Command("npm", {
      args: [...(options.args ?? ["ci"]), "--no-audit", "--no-fund", "--loglevel=error"],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!output.success) {
      const args = (options.args ?? ["ci"]).join(" ");
      throw new Error(`npm ${args} in ${dir} failed:\n${new TextDecoder().decode(output.stderr)}`);
    }
    await Deno.writeTextFile(marker, new Date().toISOString());
  } finally {
    await Deno.remove(lockDir).catch(() => {});
  }
}

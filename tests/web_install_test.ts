/**
 * The app's package install (web/deno_install.ts): a lock left by an install that was killed does
 * not block the next one.
 */
import assert from "node:assert/strict";
import { ensurePackagesInstalled } from "../web/deno_install.ts";

async function packageDir(): Promise<string> {
  const dir = `${await Deno.makeTempDir({ prefix: "web_install_" })}/`;
  await Deno.writeTextFile(`${dir}package.json`, '{"name":"x","private":true,"dependencies":{}}');
  await Deno.mkdir(`${dir}node_modules`);
  return dir;
}

/** The pid of a process that has ended. */
async function deadPid(): Promise<number> {
  const child = new Deno.Command(Deno.execPath(), { args: ["eval", ""], stdout: "null" }).spawn();
  await child.status;
  return child.pid;
}

Deno.test("web install: a lock whose owner has ended is taken over at once", async () => {
  const dir = await packageDir();
  try {
    await Deno.mkdir(`${dir}.install-lock`);
    await Deno.writeTextFile(`${dir}.install-lock/owner`, String(await deadPid()));
    // With the owner gone it installs now instead of waiting out the lock (here: 5 s, then fail).
    await ensurePackagesInstalled(dir, { timeoutMs: 5_000 });
    const installed = [...Deno.readDirSync(`${dir}node_modules`)].map((e) => e.name);
    assert.ok(installed.some((name) => name.startsWith(".installed-")), installed.join());
    assert.throws(() => Deno.statSync(`${dir}.install-lock`), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("web install: a lock held by a live process is waited for, then reported", async () => {
  const dir = await packageDir();
  try {
    await Deno.mkdir(`${dir}.install-lock`);
    await Deno.writeTextFile(`${dir}.install-lock/owner`, String(Deno.pid));
    await assert.rejects(
      () => ensurePackagesInstalled(dir, { timeoutMs: 600 }),
      /stale install lock/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

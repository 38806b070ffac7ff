/**
 * A local S3-compatible server (s3rver, from npm) for the S3 blob store tests. Its packages are
 * installed into tests/s3_server/ from the committed lock file on first use.
 *
 * @module
 */
const DIR = new URL("../s3_server/", import.meta.url).pathname;

let installing: Promise<void> | undefined;

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Installs s3rver unless installed (an exclusive lock directory serialises concurrent tests). */
function ensureInstalled(): Promise<void> {
  return installing ??= (async () => {
    const marker = `${DIR}node_modules/.installed`;
    if (await exists(marker)) return;
    const lockDir = `${DIR}.install-lock`;
    const deadline = Date.now() + 180_000;
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
        args: ["ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd: DIR,
        stdout: "piped",
        stderr: "piped",
      }).output();
      if (!output.success) {
        throw new Error(`npm ci in ${DIR} failed:\n${new TextDecoder().decode(output.stderr)}`);
      }
      await Deno.writeTextFile(marker, new Date().toISOString());
    } finally {
      await Deno.remove(lockDir).catch(() => {});
    }
  })();
}

/** A running local S3 server with one bucket. */
export interface S3Server extends AsyncDisposable {
  endpoint: string;
  bucket: string;
}

/** Starts s3rver on a free loopback port (stops when disposed). */
export async function startS3Server(bucket = "assets"): Promise<S3Server> {
  await ensureInstalled();
  const child = new Deno.Command("node", {
    args: ["server.mjs", bucket],
    cwd: DIR,
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { done, value } = await reader.read();
    if (done) throw new Error("s3rver exited before listening");
    text += value;
  }
  const { port } = JSON.parse(text.split("\n")[0]!) as { port: number };
  return {
    endpoint: `http://127.0.0.1:${port}`,
    bucket,
    async [Symbol.asyncDispose]() {
      await child.stdin.close();
      await reader.cancel();
      await child.status;
    },
  };
}

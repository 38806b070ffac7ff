/**
 * A local S3-compatible server (s3rver, from npm) for the S3 blob store tests, run by Deno. Its
 * packages are installed by Deno into tests/s3_server/ from the committed lock file on first use.
 *
 * @module
 */
import { ensurePackagesInstalled } from "../../web/deno_install.ts";

const DIR = new URL("../s3_server/", import.meta.url).pathname;

/** Installs s3rver unless installed. */
function ensureInstalled(): Promise<void> {
  return ensurePackagesInstalled(DIR, { timeoutMs: 180_000 });
}

/** A running local S3 server with one bucket. */
export interface S3Server extends AsyncDisposable {
  endpoint: string;
  bucket: string;
}

/** Starts s3rver on a free loopback port (stops when disposed). */
export async function startS3Server(bucket = "assets"): Promise<S3Server> {
  await ensureInstalled();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--node-modules-dir=manual", "server.mjs", bucket],
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

// A local S3-compatible server (s3rver) for the S3 blob store tests: listens on 127.0.0.1 on a free
// port, creates the bucket, prints {"port": N} on stdout and runs until stdin closes.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

// Loaded dynamically: the package lives in this directory's own node_modules (installed and run by Deno).
const load = (specifier) => import(specifier);
const { default: S3rver } = await load("s3rver");

const directory = mkdtempSync(join(tmpdir(), "s3rver-"));
const server = new S3rver({
  port: 0,
  address: "127.0.0.1",
  silent: true,
  directory,
  configureBuckets: [{ name: process.argv[2] ?? "assets" }],
});
const { port } = await server.run();
process.stdout.write(JSON.stringify({ port }) + "\n");
process.stdin.resume();
process.stdin.on("end", async () => {
  await server.close();
  rmSync(directory, { recursive: true, force: true });
  process.exit(0);
});

/**
 * `deno task bench`: runs every `bench/*_bench.ts` file in its own process, one after another (they
 * measure throughput and must not compete for the CPU). Extra arguments are passed to each.
 *
 * @module
 */

const dir = new URL("./", import.meta.url);
const files: string[] = [];
for await (const entry of Deno.readDir(dir)) {
  if (entry.isFile && entry.name.endsWith("_bench.ts")) files.push(entry.name);
}
files.sort();
const only = Deno.args.filter((arg) => !arg.startsWith("-"));
const selected = only.length ? files.filter((f) => only.some((o) => f.includes(o))) : files;

if (selected.length === 0) {
  console.log("no benchmarks yet");
} else {
  let failed = 0;
  for (const file of selected) {
    console.log(`\n== ${file}`);
    const status = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL(file, dir).pathname],
      stdout: "inherit",
      stderr: "inherit",
    }).spawn().status;
    if (!status.success) failed++;
  }
  if (failed > 0) Deno.exit(1);
}

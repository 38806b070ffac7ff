/**
 * Summarises a V8 CPU profile (`deno run --cpu-prof`): self time per function (with file:line),
 * optionally only for URLs containing a filter, plus idle / GC / program totals — enough to find
 * hotspots without a browser:
 * `deno run -A bench/cpu_profile_top.ts PROFILE.cpuprofile [--filter=sync/tldraw] [--top=25]`.
 *
 * @module
 */
import { parseArgs } from "node:util";

/** The parts of a `.cpuprofile` this tool reads. */
interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
    children?: number[];
  }[];
  samples: number[];
  timeDeltas: number[];
}

/** Self time (ms) per function, and inclusive time for frames matching `filter`. */
export function summariseProfile(
  profile: CpuProfile,
  filter: string,
): { total: number; self: Map<string, number>; inclusive: Map<string, number> } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const label = (id: number) => {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    const file = url.replace(/^file:\/\/.*?\/work\/main\//, "").replace(
      /^.*\/npm\/registry\.npmjs\.org\//,
      "npm:",
    );
    return `${functionName || "(anonymous)"} ${file}${url ? `:${lineNumber + 1}` : ""}`;
  };
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const ms = (profile.timeDeltas[i] ?? 0) / 1000;
    total += ms;
    const name = label(id);
    if (!filter || name.includes(filter) || name.startsWith("(")) {
      self.set(name, (self.get(name) ?? 0) + ms);
    }
    // Inclusive: each matching frame on the stack once.
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = label(at);
      if (filter && !frame.includes(filter)) continue;
      if (seen.has(frame)) continue;
      seen.add(frame);
      inclusive.set(frame, (inclusive.get(frame) ?? 0) + ms);
    }
  });
  return { total, self, inclusive };
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: { filter: { type: "string", default: "" }, top: { type: "string", default: "25" } },
  });
  const top = Number(values.top);
  for (const path of positionals) {
    const profile = JSON.parse(await Deno.readTextFile(path)) as CpuProfile;
    const { total, self, inclusive } = summariseProfile(profile, values.filter);
    const show = (title: string, map: Map<string, number>) => {
      console.log(`\n${title}`);
      for (const [name, ms] of [...map].sort((a, b) => b[1] - a[1]).slice(0, top)) {
        console.log(
          `${ms.toFixed(0).padStart(8)} ms ${(100 * ms / total).toFixed(1).padStart(5)}%  ${name}`,
        );
      }
    };
    console.log(`${path}: ${(total / 1000).toFixed(1)} s sampled`);
    show("self time", self);
    show(`inclusive time${values.filter ? ` (frames matching ${values.filter})` : ""}`, inclusive);
  }
}

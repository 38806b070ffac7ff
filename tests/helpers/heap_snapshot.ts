/**
 * Counts live objects by constructor name in a V8 heap snapshot of this process (`node:v8`
 * `writeHeapSnapshot`, which collects garbage first, so only reachable objects are counted).
 *
 * @module
 */
import v8 from "node:v8";

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

/** How many objects of each class in `names` are alive now. */
export async function liveInstances(names: readonly string[]): Promise<Record<string, number>> {
  const dir = await Deno.makeTempDir({ prefix: "heap_" });
  try {
    const file = v8.writeHeapSnapshot(`${dir}/now.heapsnapshot`);
    const { snapshot, nodes, strings } = JSON.parse(await Deno.readTextFile(file)) as Snapshot;
    const fields = snapshot.meta.node_fields;
    const typeField = fields.indexOf("type");
    const nameField = fields.indexOf("name");
    const objectType = snapshot.meta.node_types[0].indexOf("object");
    const wanted = new Set(names);
    const counts: Record<string, number> = Object.fromEntries(names.map((name) => [name, 0]));
    for (let i = 0; i < nodes.length; i += fields.length) {
      if (nodes[i + typeField] !== objectType) continue;
      const name = strings[nodes[i + nameField]!]!;
      if (wanted.has(name)) counts[name]!++;
    }
    return counts;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

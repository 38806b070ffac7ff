/**
 * Our diff algebra (sync/tldraw/diff.ts) against `@tldraw/sync-core`'s own `diffRecord` and
 * `applyObjectDiff`, on generated records and edits: the same diffs (byte for byte, so `commit` vs
 * `rebaseWithDiff` decisions match the real client) and the same patched records.
 */
import assert from "node:assert/strict";
import * as syncCore from "@tldraw/sync-core";
import { applyObjectDiff, diffRecord, type ObjectDiff } from "../../sync/tldraw/diff.ts";

// @tldraw/utils schedules a 100 ms timer when first imported; let it fire before the tests start.
await new Promise((resolve) => setTimeout(resolve, 150));

const reference = syncCore as unknown as {
  diffRecord(prev: object, next: object, legacyAppendMode?: boolean): ObjectDiff | null;
  applyObjectDiff<T extends object>(object: T, diff: ObjectDiff): T;
};

/** A small deterministic generator (xorshift), so a failure replays. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
}

type Next = () => number;
const pick = <T>(next: Next, items: readonly T[]): T => items[Math.floor(next() * items.length)]!;

function leaf(next: Next): unknown {
  return pick(next, [null, true, false, 0, -0, 1, 2.5, "", "a", "ab", "abc", "hello", "b"]);
}

function value(next: Next, depth: number): unknown {
  const roll = next();
  if (depth > 2 || roll < 0.55) return leaf(next);
  if (roll < 0.75) {
    return Array.from({ length: Math.floor(next() ** 2 * 25) }, () => value(next, depth + 1));
  }
  const object: Record<string, unknown> = {};
  for (let i = Math.floor(next() * 4); i > 0; i--) {
    object[pick(next, ["w", "h", "text", "points", "color", "0"])] = value(next, depth + 1);
  }
  return object;
}

function record(next: Next): Record<string, unknown> {
  const props: Record<string, unknown> = {};
  for (const key of ["w", "h", "text", "points", "color", "segments"]) {
    if (next() < 0.7) props[key] = value(next, 1);
  }
  return {
    id: "shape:s",
    typeName: "shape",
    x: pick(next, [0, 1, 10.5]),
    y: pick(next, [0, 2]),
    ...(next() < 0.5 ? { rotation: 0 } : {}),
    props,
    meta: next() < 0.5 ? {} : { tag: value(next, 1) },
  };
}

/** `v` edited in a few places: appends, puts, deletions, additions, nested edits. */
function edit(v: unknown, next: Next, depth = 0): unknown {
  const roll = next();
  if (roll < 0.1 && depth > 0) return value(next, depth);
  if (typeof v === "string") return roll < 0.5 ? v + pick(next, ["", "x", "yz"]) : v;
  if (Array.isArray(v)) {
    const copy = v.map((item) => (next() < 0.3 ? edit(item, next, depth + 1) : item));
    if (next() < 0.3) copy.push(value(next, depth + 1));
    if (next() < 0.1) copy.pop();
    return copy;
  }
  if (v && typeof v === "object") {
    const copy: Record<string, unknown> = {};
    for (const [k, item] of Object.entries(v)) {
      if (next() < 0.08) continue;
      copy[k] = next() < 0.4 ? edit(item, next, depth + 1) : item;
    }
    if (next() < 0.1) copy[pick(next, ["added", "w", "x"])] = value(next, depth + 1);
    return copy;
  }
  return v;
}

Deno.test("diff algebra: diffRecord and applyObjectDiff match sync-core's on generated edits", () => {
  const next = random(0xd1ff);
  let diffs = 0;
  for (let i = 0; i < 20_000; i++) {
    const prev = record(next);
    const target = next() < 0.1 ? structuredClone(prev) : edit(prev, next) as object;
    for (const legacy of [false, true]) {
      const ours = diffRecord(prev, target, legacy);
      const theirs = reference.diffRecord(prev, target, legacy);
      assert.deepStrictEqual(ours, theirs, JSON.stringify({ prev, target, legacy }));
      assert.equal(JSON.stringify(ours), JSON.stringify(theirs));
      if (ours) diffs++;
    }
    // Patches as clients send them: a diff of some other edit, applied to this record.
    const patch = reference.diffRecord(record(next), edit(prev, next) as object) ??
      { x: ["put", 3] };
    const applied = applyObjectDiff(prev, patch);
    assert.deepStrictEqual(applied, reference.applyObjectDiff(prev, patch));
    // Unchanged objects keep their identity, as the reference's.
    assert.equal(applied === prev, reference.applyObjectDiff(prev, patch) === prev);
    const own = reference.diffRecord(prev, target);
    if (own) {
      assert.deepStrictEqual(applyObjectDiff(prev, own), reference.applyObjectDiff(prev, own));
    }
  }
  assert.ok(diffs > 20_000, `non-empty diffs: ${diffs}`);
});

Deno.test("diff algebra: ops that do not apply are skipped, as by the reference", () => {
  const prev = { id: "shape:s", x: 1, props: { text: "ab", list: [1, 2] } };
  const patches: ObjectDiff[] = [
    { props: ["patch", { text: ["append", "c", 5] }] }, // wrong offset
    { props: ["patch", { list: ["append", "x", 2] }] }, // a string onto an array
    { y: ["patch", { a: ["put", 1] }] }, // patching a missing key
    { x: ["put", 1] }, // no change
    { z: ["delete"] }, // deleting a missing key
    { props: ["patch", { list: ["patch", { 1: ["put", 5] }] }] },
  ];
  for (const patch of patches) {
    const ours = applyObjectDiff(prev, patch);
    const theirs = reference.applyObjectDiff(prev, patch);
    assert.deepStrictEqual(ours, theirs);
    assert.equal(ours === prev, theirs === prev);
  }
});

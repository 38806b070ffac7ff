/**
 * Our diff algebra (sync/tldraw/diff.ts) against `@tldraw/sync-core`'s own `diffRecord` and
 * `applyObjectDiff`, on generated records and edits: the same diffs (byte for byte, so `commit` vs
 * `rebaseWithDiff` decisions match the real client) and the same patched records. And `jsonEqual`,
 * which decides `commit` vs `rebaseWithDiff` as the reference's `isEqual` (lodash) does, against
 * lodash on generated JSON values and their near copies.
 */
import assert from "node:assert/strict";
import * as syncCore from "@tldraw/sync-core";
import { isEqual } from "@tldraw/utils";
import { applyObjectDiff, diffRecord, jsonEqual, type ObjectDiff } from "../../sync/tldraw/diff.ts";

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

/** A JSON value for the equality tests. */
function jsonValue(next: () => number, depth: number): unknown {
  const pick = Math.floor(next() * (depth > 3 ? 5 : 7));
  switch (pick) {
    case 0:
      return null;
    case 1:
      return next() < 0.5;
    case 2:
      return [0, -0, 1, 1.5, -2][Math.floor(next() * 5)];
    case 3:
      return ["", "a", "b", "put", "patch"][Math.floor(next() * 5)];
    case 4:
      return Math.floor(next() * 3);
    case 5:
      return Array.from({ length: Math.floor(next() * 3) }, () => jsonValue(next, depth + 1));
    default: {
      const object: Record<string, unknown> = {};
      for (let i = Math.floor(next() * 4); i > 0; i--) {
        object[["x", "y", "props", "0", "1"][Math.floor(next() * 5)]!] = jsonValue(next, depth + 1);
      }
      return object;
    }
  }
}

/** A copy of `v` (reordered keys), sometimes changed in one place. */
function nearCopy(v: unknown, next: () => number): unknown {
  if (next() < 0.1) return jsonValue(next, 2);
  if (Array.isArray(v)) return v.map((item) => nearCopy(item, next));
  if (v && typeof v === "object") {
    const entries = Object.entries(v).reverse().map(([k, item]) => [k, nearCopy(item, next)]);
    if (next() < 0.05) entries.push(["extra", 1]);
    if (next() < 0.05) entries.pop();
    return Object.fromEntries(entries);
  }
  return v;
}

Deno.test("jsonEqual: the same answer as lodash isEqual on JSON values", () => {
  const next = random(0x5eed);
  let equal = 0;
  for (let i = 0; i < 20_000; i++) {
    const a = jsonValue(next, 0);
    const b = next() < 0.5 ? nearCopy(a, next) : jsonValue(next, 0);
    const expected = isEqual(a, b);
    if (expected) equal++;
    assert.equal(jsonEqual(a, b), expected, `${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
    assert.equal(jsonEqual(b, a), expected);
  }
  // Both answers occur often enough for the comparison to mean something.
  assert.ok(equal > 2_000 && equal < 18_000, `equal pairs: ${equal}`);
});

Deno.test("jsonEqual: edge cases", () => {
  assert.equal(jsonEqual(undefined, undefined), true);
  assert.equal(jsonEqual(undefined, {}), false);
  assert.equal(jsonEqual({}, []), false);
  assert.equal(jsonEqual([], {}), false);
  assert.equal(jsonEqual(0, -0), true);
  assert.equal(jsonEqual({ a: 1, b: 2 }, { b: 2, a: 1 }), true);
  assert.equal(jsonEqual({ a: 1 }, { a: 1, b: 2 }), false);
  assert.equal(jsonEqual({ a: 1, b: 2 }, { a: 1 }), false);
  assert.equal(jsonEqual([1, [2]], [1, [2]]), true);
  assert.equal(jsonEqual([1, [2]], [1, [3]]), false);
  assert.equal(jsonEqual("1", 1), false);
  assert.equal(jsonEqual(null, {}), false);
});

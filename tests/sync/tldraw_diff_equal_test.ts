/**
 * `jsonEqual` decides `commit` vs `rebaseWithDiff` as the reference's `isEqual` (lodash) does:
 * checked against it on generated JSON values and their near copies.
 */
import assert from "node:assert/strict";
import { isEqual } from "@tldraw/utils";
import { jsonEqual } from "../../sync/tldraw/diff.ts";

// @tldraw/utils schedules a 100 ms timer when first imported; let it fire before the tests start.
await new Promise((resolve) => setTimeout(resolve, 150));

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

function value(next: () => number, depth: number): unknown {
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
      return Array.from({ length: Math.floor(next() * 3) }, () => value(next, depth + 1));
    default: {
      const object: Record<string, unknown> = {};
      for (let i = Math.floor(next() * 4); i > 0; i--) {
        object[["x", "y", "props", "0", "1"][Math.floor(next() * 5)]!] = value(next, depth + 1);
      }
      return object;
    }
  }
}

/** A copy of `v` (reordered keys), sometimes changed in one place. */
function nearCopy(v: unknown, next: () => number): unknown {
  if (next() < 0.1) return value(next, 2);
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
    const a = value(next, 0);
    const b = next() < 0.5 ? nearCopy(a, next) : value(next, 0);
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

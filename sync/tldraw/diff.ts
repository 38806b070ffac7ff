/**
 * The diff algebra of `@tldraw/sync-core` (spec section 3), re-exported with types.
 *
 * sync-core exports `diffRecord` and `applyObjectDiff` at runtime but strips them from its published
 * `.d.ts` (they are marked internal). Reusing them keeps our diffs byte-for-byte the reference's, so
 * `commit` vs `rebaseWithDiff` decisions match the real client; this module only adds the types.
 *
 * @module
 */
import * as syncCore from "@tldraw/sync-core";

/** A value-level op: `["put", v]`, `["append", v, offset]`, `["patch", ObjectDiff]`, `["delete"]`. */
export type ValueOp =
  | ["put", unknown]
  | ["append", unknown, number]
  | ["patch", ObjectDiff]
  | ["delete"];

/** `{ [key]: ValueOp }`, keys of array diffs are decimal indices. */
export type ObjectDiff = { [key: string]: ValueOp };

interface DiffAlgebra {
  diffRecord(prev: object, next: object, legacyAppendMode?: boolean): ObjectDiff | null;
  applyObjectDiff<T extends object>(object: T, diff: ObjectDiff): T;
}

const algebra = syncCore as unknown as DiffAlgebra;

/**
 * The diff turning `prev` into `next` (`props` and `meta` diffed recursively), or `null` when they
 * are equal. `legacyAppendMode` replaces string appends by puts (for protocol 7 and older clients).
 */
export const diffRecord: DiffAlgebra["diffRecord"] = algebra.diffRecord;

/** Applies `diff` copy-on-write: unchanged objects keep their identity; inapplicable ops are skipped. */
export const applyObjectDiff: DiffAlgebra["applyObjectDiff"] = algebra.applyObjectDiff;

/**
 * Deep equality of JSON values (what `isEqual` of `@tldraw/utils`, i.e. lodash, answers for them:
 * key order is ignored, arrays and objects never equal each other, `0` equals `-0`). The reference
 * decides `commit` vs `rebaseWithDiff` by comparing diffs this way; lodash's general version
 * (Maps, typed arrays, cycles) took ~9 µs per small diff, a few % of a busy server's thread.
 */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) {
    return a !== a && b !== b; // NaN
  }
  const isArray = Array.isArray(a);
  if (isArray !== Array.isArray(b)) return false;
  if (isArray) {
    const other = b as unknown[];
    if (a.length !== other.length) return false;
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i], other[i])) return false;
    return true;
  }
  const left = a as Record<string, unknown>;
  const right = b as Record<string, unknown>;
  let keys = 0;
  for (const key in left) {
    if (!Object.hasOwn(left, key)) continue;
    if (!Object.hasOwn(right, key) || !jsonEqual(left[key], right[key])) return false;
    keys++;
  }
  for (const key in right) if (Object.hasOwn(right, key)) keys--;
  return keys === 0;
}

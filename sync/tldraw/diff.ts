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

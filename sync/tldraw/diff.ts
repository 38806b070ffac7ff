/**
 * The diff algebra of `@tldraw/sync-core` (spec section 3): `diffRecord` and `applyObjectDiff`.
 *
 * The same algorithm as sync-core's (whose published `.d.ts` strips these internal functions), so
 * that our diffs are byte-for-byte the reference's and `commit` vs `rebaseWithDiff` decisions match
 * the real client; tests/sync/tldraw_diff_algebra_test.ts checks that against sync-core's own on
 * generated records and patches. One change: values are compared with {@link jsonEqual} instead
 * of lodash's general `isEqual` (the same answers for JSON values, which records are), which took
 * most of the time of a presence push's planning.
 *
 * @module
 */

/** A value-level op: `["put", v]`, `["append", v, offset]`, `["patch", ObjectDiff]`, `["delete"]`. */
export type ValueOp =
  | ["put", unknown]
  | ["append", unknown, number]
  | ["patch", ObjectDiff]
  | ["delete"];

/** `{ [key]: ValueOp }`, keys of array diffs are decimal indices. */
export type ObjectDiff = { [key: string]: ValueOp };

/** Keys of a record diffed recursively (everything else is put whole when it changed). */
const NESTED_KEYS: ReadonlySet<string> = new Set(["props", "meta"]);

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

/**
 * The diff turning `prev` into `next` (`props` and `meta` diffed recursively), or `null` when they
 * are equal. `legacyAppendMode` replaces string appends by puts (for protocol 7 and older clients).
 */
export function diffRecord(
  prev: object,
  next: object,
  legacyAppendMode = false,
): ObjectDiff | null {
  return diffObject(prev, next, NESTED_KEYS, legacyAppendMode);
}

function diffObject(
  prev: object,
  next: object,
  nestedKeys: ReadonlySet<string> | undefined,
  legacyAppendMode: boolean,
): ObjectDiff | null {
  if (prev === next) return null;
  const before = prev as Record<string, unknown>;
  const after = next as Record<string, unknown>;
  let result: ObjectDiff | null = null;
  for (const key of Object.keys(before)) {
    // `in`, as the reference: a key only on the prototype counts as present.
    if (!(key in after)) {
      (result ??= {})[key] = ["delete"];
      continue;
    }
    const prevValue = before[key];
    const nextValue = after[key];
    if (
      nestedKeys?.has(key) ||
      (Array.isArray(prevValue) && Array.isArray(nextValue)) ||
      (typeof prevValue === "string" && typeof nextValue === "string")
    ) {
      const diff = diffValue(prevValue, nextValue, legacyAppendMode);
      if (diff) (result ??= {})[key] = diff;
    } else if (!jsonEqual(prevValue, nextValue)) {
      (result ??= {})[key] = ["put", nextValue];
    }
  }
  for (const key of Object.keys(after)) {
    if (!(key in before)) (result ??= {})[key] = ["put", after[key]];
  }
  return result;
}

function diffValue(a: unknown, b: unknown, legacyAppendMode: boolean): ValueOp | null {
  if (Object.is(a, b)) return null;
  if (Array.isArray(a) && Array.isArray(b)) return diffArray(a, b, legacyAppendMode);
  if (typeof a === "string" && typeof b === "string") {
    if (!legacyAppendMode && b.startsWith(a)) return ["append", b.slice(a.length), a.length];
    return ["put", b];
  }
  if (!a || !b || typeof a !== "object" || typeof b !== "object") {
    return jsonEqual(a, b) ? null : ["put", b];
  }
  const diff = diffObject(a, b, undefined, legacyAppendMode);
  return diff ? ["patch", diff] : null;
}

function diffArray(prev: unknown[], next: unknown[], legacyAppendMode: boolean): ValueOp | null {
  if (Object.is(prev, next)) return null;
  if (prev.length === next.length) {
    // More than a fifth of the items changed: the whole array is put.
    const maxPatchIndexes = Math.max(prev.length / 5, 1);
    const toPatch: number[] = [];
    for (let i = 0; i < prev.length; i++) {
      if (!jsonEqual(prev[i], next[i])) {
        toPatch.push(i);
        if (toPatch.length > maxPatchIndexes) return ["put", next];
      }
    }
    if (toPatch.length === 0) return null;
    const diff: ObjectDiff = {};
    for (const i of toPatch) {
      const prevItem = prev[i];
      const nextItem = next[i];
      if (!prevItem || !nextItem) {
        diff[i] = ["put", nextItem];
      } else if (typeof prevItem === "object" && typeof nextItem === "object") {
        const op = diffValue(prevItem, nextItem, legacyAppendMode);
        if (op) diff[i] = op;
      } else {
        diff[i] = ["put", nextItem];
      }
    }
    return ["patch", diff];
  }
  // Lengths differ: an append if every shared item is unchanged, else the whole array.
  for (let i = 0; i < prev.length; i++) {
    if (!jsonEqual(prev[i], next[i])) return ["put", next];
  }
  return ["append", next.slice(prev.length), prev.length];
}

/** Applies `diff` copy-on-write: unchanged objects keep their identity; inapplicable ops are skipped. */
export function applyObjectDiff<T extends object>(object: T, objectDiff: ObjectDiff): T {
  if (!object || typeof object !== "object") return object; // nulls are not patched
  const isArray = Array.isArray(object);
  const source = object as Record<string, unknown>;
  let copy: Record<string, unknown> | unknown[] | undefined;
  const set = (key: string, value: unknown) => {
    copy ??= isArray ? [...(object as unknown[])] : { ...source };
    if (isArray) (copy as unknown[])[Number(key)] = value;
    else (copy as Record<string, unknown>)[key] = value;
  };
  for (const [key, op] of Object.entries(objectDiff)) {
    switch (op[0]) {
      case "put":
        if (!jsonEqual(source[key], op[1])) set(key, op[1]);
        break;
      case "append": {
        const [, value, offset] = op;
        const current = source[key];
        if (Array.isArray(current) && Array.isArray(value) && current.length === offset) {
          set(key, [...current, ...value]);
        } else if (
          typeof current === "string" && typeof value === "string" && current.length === offset
        ) {
          set(key, current + value);
        }
        break; // a type or length mismatch is ignored, as by the reference
      }
      case "patch": {
        const current = source[key];
        if (current && typeof current === "object") {
          const patched = applyObjectDiff(current, op[1]);
          if (patched !== current) set(key, patched);
        }
        break;
      }
      case "delete":
        if (key in source) {
          copy ??= isArray ? [...(object as unknown[])] : { ...source };
          delete (copy as Record<string, unknown>)[key];
        }
        break;
    }
  }
  return (copy ?? object) as T;
}

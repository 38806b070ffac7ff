/**
 * The hand-written push parser agrees with the protocol's zod schema: same verdict on valid and
 * malformed pushes, same result when valid.
 */
import assert from "node:assert/strict";
import { parsePush, pushRequestSchema } from "../../sync/tldraw/protocol.ts";

const record = { id: "shape:a", typeName: "shape", x: 1, props: { w: 2 } };
const valid: unknown[] = [
  { type: "push", clientClock: 0 },
  { type: "push", clientClock: 3, extra: "stripped" },
  { type: "push", clientClock: 1, diff: {} },
  { type: "push", clientClock: 1, diff: { "shape:a": ["put", record] } },
  { type: "push", clientClock: 1, diff: { "shape:a": ["patch", { x: ["put", 5] }] } },
  { type: "push", clientClock: 1, diff: { "shape:a": ["patch", { t: ["append", "x", 3] }] } },
  { type: "push", clientClock: 1, diff: { "shape:a": ["remove"] } },
  { type: "push", clientClock: 1, presence: null },
  { type: "push", clientClock: 1, presence: ["put", { id: "p", anything: [1] }] },
  { type: "push", clientClock: 1, presence: ["patch", { cursor: ["put", { x: 1 }] }] },
  { type: "push", clientClock: 1, presence: ["put", {}], diff: { a: ["remove"] } },
];
const invalid: unknown[] = [
  null,
  [],
  "push",
  { type: "push" },
  { type: "push", clientClock: "1" },
  { type: "pull", clientClock: 1 },
  { type: "push", clientClock: 1, diff: null },
  { type: "push", clientClock: 1, diff: [] },
  { type: "push", clientClock: 1, diff: { a: "remove" } },
  { type: "push", clientClock: 1, diff: { a: ["remove", 1] } },
  { type: "push", clientClock: 1, diff: { a: ["put"] } },
  { type: "push", clientClock: 1, diff: { a: ["put", { id: "", typeName: "shape" }] } },
  { type: "push", clientClock: 1, diff: { a: ["put", { id: "a" }] } },
  { type: "push", clientClock: 1, diff: { a: ["put", { id: "a", typeName: 1 }] } },
  { type: "push", clientClock: 1, diff: { a: ["put", record, "more"] } },
  { type: "push", clientClock: 1, diff: { a: ["put", [1]] } },
  { type: "push", clientClock: 1, diff: { a: ["patch", { x: [] }] } },
  { type: "push", clientClock: 1, diff: { a: ["patch", { x: [1] }] } },
  { type: "push", clientClock: 1, diff: { a: ["patch", { x: "put" }] } },
  { type: "push", clientClock: 1, diff: { a: ["patch", []] } },
  { type: "push", clientClock: 1, diff: { a: ["move", {}] } },
  { type: "push", clientClock: 1, presence: ["remove"] },
  { type: "push", clientClock: 1, presence: ["put"] },
  { type: "push", clientClock: 1, presence: ["put", []] },
  { type: "push", clientClock: 1, presence: ["put", null] },
  { type: "push", clientClock: 1, presence: ["patch", { x: [] }] },
  { type: "push", clientClock: 1, presence: ["put", {}, 1] },
  { type: "push", clientClock: 1, presence: {} },
];

Deno.test("parsePush accepts what the zod schema accepts and returns the same", () => {
  for (const message of valid) {
    const zod = pushRequestSchema.safeParse(message);
    assert.ok(zod.success, JSON.stringify(message));
    assert.deepEqual(parsePush(message), zod.data, JSON.stringify(message));
  }
});

Deno.test("parsePush refuses what the zod schema refuses", () => {
  for (const message of invalid) {
    assert.equal(pushRequestSchema.safeParse(message).success, false, JSON.stringify(message));
    assert.equal(parsePush(message), undefined, JSON.stringify(message));
  }
});

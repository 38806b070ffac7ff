/**
 * The client-chunk reassembler (spec 1.2), against the real client's splitter.
 */
import assert from "node:assert/strict";
import * as syncCore from "@tldraw/sync-core";
import { ChunkAssembler } from "../../sync/tldraw/chunks.ts";
import "../helpers/tldraw_settle.ts";

const { chunk } = syncCore as unknown as { chunk(message: string): string[] };

Deno.test("whole frames parse at once; the client's chunks reassemble in order", () => {
  const assembler = new ChunkAssembler();
  assert.deepEqual(assembler.push('{"type":"ping"}'), {
    kind: "message",
    data: { type: "ping" },
    text: '{"type":"ping"}',
  });
  // Newlines and U+2028 inside JSON strings survive the prefix match.
  const message = JSON.stringify({ type: "push", text: "a\nb\u2028c".repeat(200_000) });
  const frames = chunk(message);
  assert.ok(frames.length > 1);
  for (const frame of frames.slice(0, -1)) {
    assert.deepEqual(assembler.push(frame), { kind: "pending" });
  }
  const last = assembler.push(frames.at(-1)!);
  assert.equal(last.kind, "message");
  assert.equal(last.kind === "message" && last.text, message);
  // A single "0_" piece is a complete message too.
  assert.equal(assembler.push('0_{"type":"ping"}').kind, "message");
});

Deno.test("framing errors are classified and reset the sequence", () => {
  const assembler = new ChunkAssembler(100);
  assert.deepEqual(assembler.push("{nope"), { kind: "error", error: "invalid_json" });
  assert.deepEqual(assembler.push("hello"), { kind: "error", error: "bad_prefix" });
  assert.deepEqual(assembler.push("2_{"), { kind: "pending" });
  assert.deepEqual(assembler.push("0_}"), { kind: "error", error: "wrong_order" });
  assert.deepEqual(assembler.push("1_{"), { kind: "pending" });
  assert.deepEqual(assembler.push('{"type":"ping"}'), { kind: "error", error: "wrong_order" });
  assert.deepEqual(assembler.push("1_{x"), { kind: "pending" });
  assert.deepEqual(assembler.push("0_}"), { kind: "error", error: "invalid_chunked_json" });
  assert.deepEqual(assembler.push(`{"t":"${"x".repeat(200)}"}`), {
    kind: "error",
    error: "too_large",
  });
  assert.deepEqual(assembler.push(`1_${"x".repeat(60)}`), { kind: "pending" });
  assert.deepEqual(assembler.push(`0_${"x".repeat(60)}`), { kind: "error", error: "too_large" });
  // After every error the next whole message works.
  assert.equal(assembler.push('{"type":"ping"}').kind, "message");
});

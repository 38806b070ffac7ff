import assert from "node:assert/strict";
import { utf8Length } from "../../sync/utf8.ts";

Deno.test("utf8Length: the byte count TextEncoder writes, lone surrogates as U+FFFD", () => {
  const samples = [
    "",
    "plain ascii",
    "é",
    "€",
    "😀",
    "a\ud800\udc00b",
    "\ud800",
    "\udc00x",
    "x\ud83d",
    "ÿ".repeat(3),
    JSON.stringify({ text: "Grüße, 世界 🌍" }),
  ];
  const encoder = new TextEncoder();
  for (const text of samples) {
    assert.equal(utf8Length(text), encoder.encode(text).length, JSON.stringify(text));
  }
});

Deno.test("utf8Length: a large reply with one multi-byte character at the end", () => {
  const text = "x".repeat(3_000_000) + "€";
  assert.equal(utf8Length(text), 3_000_003);
});

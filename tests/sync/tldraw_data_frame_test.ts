import assert from "node:assert/strict";
import { encodeDataFrame } from "../../sync/tldraw/data_frame.ts";
import type { DataEvent } from "../../sync/tldraw/protocol.ts";

Deno.test("a data frame is byte for byte what JSON.stringify gives, shared events included", () => {
  const patch: DataEvent = {
    type: "patch",
    diff: { "shape:a": ["put", { id: "shape:a", typeName: "shape", text: 'q"\u2028é' }] },
    serverClock: 7,
  };
  const result: DataEvent = {
    type: "push_result",
    clientClock: 3,
    serverClock: 7,
    action: "commit",
  };
  for (const events of [[patch], [result, patch], [patch, result, patch]]) {
    assert.equal(encodeDataFrame(events), JSON.stringify({ type: "data", data: events }));
  }
  assert.equal(encodeDataFrame([]), JSON.stringify({ type: "data", data: [] }));
});

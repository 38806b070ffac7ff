import assert from "node:assert/strict";
import { encodeConnectReply, encodeDataFrame } from "../../sync/tldraw/data_frame.ts";
import type { ConnectReply, DataEvent } from "../../sync/tldraw/protocol.ts";
import { LazyRecord, recordJson, rememberRecordJson } from "../../sync/tldraw/record_json.ts";

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
    const frame = encodeDataFrame(events);
    assert.equal(frame.text, JSON.stringify({ type: "data", data: events }));
    assert.equal(frame.bytes, new TextEncoder().encode(frame.text).byteLength);
  }
  assert.equal(encodeDataFrame([]).text, JSON.stringify({ type: "data", data: [] }));
});

Deno.test("a connect reply parses to the reply, with each put record's cached JSON text", () => {
  const loaded = JSON.parse('{ "id": "shape:a", "typeName": "shape", "x": 1 }');
  // As after a load from KV: the record's text is the one it was parsed from (spaces and all).
  rememberRecordJson(loaded, '{ "id": "shape:a", "typeName": "shape", "x": 1 }');
  const reply: ConnectReply = {
    type: "connect",
    connectRequestId: "c1",
    hydrationType: "wipe_all",
    protocolVersion: 8,
    schema: { schemaVersion: 2, sequences: {} } as never,
    serverClock: 7,
    diff: {
      "instance_presence:p": ["put", { id: "instance_presence:p", typeName: "instance_presence" }],
      "shape:a": ["put", loaded],
      "shape:b": ["patch", { x: ["put", 2] }],
      "shape:c": ["remove"],
    } as never,
    isReadonly: false,
  };
  const text = encodeConnectReply(reply);
  assert.deepEqual(JSON.parse(text), JSON.parse(JSON.stringify(reply)));
  assert.ok(text.includes('"shape:a":["put",{ "id": "shape:a"'), "the cached text was used");
  // The cache answers for the same object wherever it is asked.
  assert.equal(
    recordJson(reply.diff["shape:a"]![1] as object),
    '{ "id": "shape:a", "typeName": "shape", "x": 1 }',
  );
});

Deno.test("connect reply: stored records are added to the diff as their stored JSON, unparsed", () => {
  const reply: ConnectReply = {
    type: "connect",
    connectRequestId: "c2",
    hydrationType: "wipe_all",
    protocolVersion: 8,
    schema: { schemaVersion: 2, sequences: {} } as never,
    serverClock: 3,
    diff: { "shape:gone": ["remove"] } as never,
    isReadonly: true,
  };
  // A record that must not be parsed on the way.
  class Unparsed extends LazyRecord {
    override get state(): never {
      throw new Error("parsed");
    }
  }
  const stored = new Unparsed("shape:s", '{"id":"shape:s","typeName":"shape","y":2}', 3);
  const text = encodeConnectReply(reply, [stored]);
  assert.deepEqual(JSON.parse(text), {
    ...reply,
    diff: {
      "shape:gone": ["remove"],
      "shape:s": ["put", { id: "shape:s", typeName: "shape", y: 2 }],
    },
  });
  assert.ok(text.includes(`"shape:s":["put",${stored.json}]`));
});

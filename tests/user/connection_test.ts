import assert from "node:assert/strict";
import { silentLogger } from "../../log.ts";
import type { ChangeRecord } from "../../sync/user/change_records.ts";
import { type ConnectionHost, UserSyncConnection } from "../../sync/user/connection.ts";
import type { UserSnapshot } from "../../sync/user/data.ts";

/** A WebSocket stand-in: an EventTarget that records what is sent. */
class FakeWebSocket extends EventTarget {
  readyState: number = WebSocket.CONNECTING;
  readonly sent: Record<string, unknown>[] = [];
  closedWith: { code: number; reason: string } | undefined;
  send(data: string) {
    this.sent.push(JSON.parse(data));
  }
  close(code: number, reason: string) {
    this.closedWith = { code, reason };
    this.readyState = WebSocket.CLOSED;
  }
  open() {
    this.readyState = WebSocket.OPEN;
    this.dispatchEvent(new Event("open"));
  }
}

function change(seq: number, name: string): ChangeRecord {
  return {
    seq,
    userIds: ["u"],
    table: "file",
    event: "update",
    row: { id: "f", name },
    before: null,
  };
}

Deno.test("connection: holds changes back until initial_data, skips what the snapshot reflects and stale row versions", async () => {
  let resolveLoad!: (snapshot: UserSnapshot) => void;
  const host: ConnectionHost = {
    load: () => new Promise((resolve) => (resolveLoad = resolve)),
    mutate: () => {},
    closed: () => {},
  };
  const socket = new FakeWebSocket();
  const connection = new UserSyncConnection(
    socket as unknown as WebSocket,
    "u",
    "s",
    host,
    silentLogger,
    1024,
  );
  connection.attach();
  socket.open();
  // Arrives while loading: seq 5 is already in the snapshot, seq 6 is not.
  connection.deliver([change(5, "five"), change(6, "six")]);
  assert.equal(socket.sent.length, 0);
  resolveLoad({
    initialData: { user: { id: "u" }, files: [], fileStates: [] },
    mutationNumber: 3,
    reflectedSeqs: new Set([5]),
  });
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.deepEqual(socket.sent.map((m) => m.type), ["initial_data", "update"]);
  assert.deepEqual(socket.sent[1], {
    type: "update",
    updates: [{ table: "file", event: "update", row: { id: "f", name: "six" } }],
  });
  // A newer version of the row went out; an older one seen later (a late commit) is stale.
  connection.deliver([change(9, "nine")]);
  connection.deliver([change(7, "seven")]);
  assert.deepEqual(
    socket.sent.slice(2).map((m) => (m.updates as { row: { name: string } }[])[0]!.row.name),
    [
      "nine",
    ],
  );
  // Oversized messages are refused like malformed ones.
  socket.dispatchEvent(new MessageEvent("message", { data: "x".repeat(2048) }));
  assert.deepEqual(socket.closedWith, { code: 4099, reason: "BAD_REQUEST" });
});

/** The live log tail over WebSocket: development only, admins only, filtered, bounded per client. */
import assert from "node:assert/strict";
import { testConfig } from "../../config.ts";
import { createLogger } from "../../log.ts";
import { connectRaw, connectRequest, openRaw } from "../helpers/raw_socket.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { startAuthServer } from "../helpers/user_sync_client.ts";
import { eventually } from "../helpers/wait.ts";

const ADMIN_TOKEN = "admin-token-for-tests-0123456789";

function config(debugTail: boolean) {
  const base = testConfig();
  return { ...base, debugTail, auth: { ...base.auth, adminToken: ADMIN_TOKEN } };
}

/** A log line as the tail sends it. */
// deno-lint-ignore no-explicit-any
type Line = Record<string, any>;

/** An admin's tail socket, recording every line. */
class Tail implements AsyncDisposable {
  readonly ws: WebSocket;
  readonly lines: Line[] = [];
  readonly opened: Promise<void>;
  readonly closed: Promise<void>;

  constructor(server: TestServer, query = "") {
    this.ws = new WebSocket(`${server.wsUrl}/admin/debug/tail${query}`, {
      headers: { Authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    this.opened = new Promise((resolve, reject) => {
      this.ws.addEventListener("open", () => resolve(), { once: true });
      this.ws.addEventListener("error", () => reject(new Error("tail refused")), { once: true });
    });
    this.closed = new Promise((resolve) => this.ws.addEventListener("close", () => resolve()));
    this.ws.addEventListener("message", (event) => this.lines.push(JSON.parse(event.data)));
  }

  async waitFor(match: (line: Line) => boolean, what: string): Promise<Line> {
    await eventually(() => this.lines.some(match), 3_000, what);
    return this.lines.find(match)!;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.opened.catch(() => {});
    if (this.ws.readyState <= WebSocket.OPEN) this.ws.close();
    await this.closed;
  }
}

Deno.test("debug tail: 404 unless the server runs in development mode", async () => {
  await using server = await startTestServer({ config: config(false) });
  const response = await fetch(`${server.url}/admin/debug/tail`, {
    headers: { Authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  assert.equal(response.status, 404);
  await response.body?.cancel();
  // Off by default outside `--dev`, on under it.
  assert.equal(testConfig().debugTail, false);
});

Deno.test("debug tail: refuses anyone but an admin", async () => {
  await using server = await startAuthServer({
    config: { debugTail: true },
    auth: { adminToken: ADMIN_TOKEN },
  });
  const status = async (headers: Record<string, string>) => {
    const response = await fetch(`${server.url}/admin/debug/tail`, { headers });
    await response.body?.cancel();
    return response.status;
  };
  assert.equal(await status({}), 401);
  assert.equal(await status({ Authorization: "Bearer not-the-token" }), 401);
  assert.equal(await status({ Authorization: `Bearer ${await server.token("mallory")}` }), 403);
  // An admin gets past the check (and is told to upgrade).
  assert.equal(await status({ Authorization: `Bearer ${ADMIN_TOKEN}` }), 400);
  // A WebSocket without credentials is not upgraded.
  const anonymous = new WebSocket(`${server.wsUrl}/admin/debug/tail`);
  const refused = await new Promise<boolean>((resolve) => {
    anonymous.addEventListener("open", () => resolve(false));
    anonymous.addEventListener("error", () => resolve(true));
  });
  if (anonymous.readyState <= WebSocket.OPEN) anonymous.close();
  assert.equal(refused, true);
});

Deno.test("debug tail: streams a room's log lines as they happen, filtered by room", async () => {
  // LOG_LEVEL stays `info`: the tail still gets the `debug` lines it asks for.
  await using server = await startTestServer({
    config: config(true),
    log: createLogger("info", () => {}),
  });
  await using tail = new Tail(server, "?level=debug&roomId=tailed-room");
  await tail.opened;
  const { socket } = await connectRaw(`${server.wsUrl}/r/tailed-room?sessionId=watched`);
  const joined = await tail.waitFor((l) => l.msg === "session joined", "session joined");
  assert.equal(joined.level, "debug");
  assert.equal(joined.roomId, "tailed-room");
  assert.equal(joined.sessionId, "watched");
  assert.equal(typeof joined.time, "string");
  // A refusal in the same room, and activity in another room that the filter keeps out.
  const { socket: elsewhere } = await connectRaw(`${server.wsUrl}/r/other-room?sessionId=other`);
  const old = await openRaw(`${server.wsUrl}/r/tailed-room?sessionId=too-old`);
  old.send(connectRequest({ protocolVersion: 3 }));
  await old.closed;
  const rejected = await tail.waitFor((l) => l.msg === "session rejected", "session rejected");
  assert.deepEqual([rejected.level, rejected.sessionId, rejected.reason], [
    "info",
    "too-old",
    "CLIENT_TOO_OLD",
  ]);
  await socket.close();
  await elsewhere.close();
  assert.ok(tail.lines.every((l) => l.roomId === "tailed-room"), JSON.stringify(tail.lines));
});

Deno.test("debug tail: a level filter, and a slow client loses lines it is told about", async () => {
  await using server = await startTestServer({
    config: config(true),
    log: createLogger("error", () => {}),
    debugTail: { maxQueuedLines: 3 },
  });
  await using tail = new Tail(server, "?level=warn");
  await tail.opened;
  const log = server.deps.log;
  // Written in one go: the queue takes three, the rest is dropped and counted.
  log.info("below the filter");
  for (let i = 0; i < 10; i++) log.warn("burst", { i });
  await tail.waitFor((l) => l.msg === "debug tail dropped lines", "dropped notice");
  assert.deepEqual(tail.lines.map((l) => l.i ?? `dropped ${l.dropped}`), [0, 1, 2, "dropped 7"]);
  // Once it caught up, the client gets lines again.
  log.error("after the burst");
  await tail.waitFor((l) => l.msg === "after the burst", "a later line");
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  assert.match(metrics, /debug_tail_dropped_total 7\n/);
});

/**
 * LiveStore sync throughput: `deno run -A bench/livestore_bench.ts [--seconds=N] [--events=N]`.
 *
 * Runs the real app (in-process, on a free port) on the database the tests use: Postgres when
 * `DATABASE_URL` is set (a scratch database is created and dropped), otherwise an in-memory PGlite.
 * Clients are raw WebSockets speaking the sync-cf wire format and behaving like the real client: one live
 * pull each; push one event on top of the head they know; on `ServerAheadError` wait for the live pull to
 * deliver the missing events, then retry.
 *
 * Prints a table: accepted events/s for 1 store × 10 clients and 100 stores × 2 clients, and how fast a
 * 100,000-event log is pulled by a new client.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { Lifecycle } from "../routes/lifecycle.ts";
import { createApp } from "../routes/app.ts";
import { testConfig } from "../config.ts";
import { silentLogger } from "../log.ts";
import { PostgresEventStore } from "../sync/livestore/postgres_event_store.ts";
import type { Database } from "../db/database.ts";
import { openPostgres } from "../db/postgres.ts";
import { openTestDatabase } from "../tests/helpers/db.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    seconds: { type: "string", default: "8" },
    events: { type: "string", default: "100000" },
  },
});
const SECONDS = Number(values.seconds);
const PULL_EVENTS = Number(values.events);

// deno-lint-ignore no-explicit-any
type Frame = Record<string, any>;

/** A raw client that keeps its live pull's head and pushes single events on top of it. */
class BenchClient {
  readonly #socket: WebSocket;
  readonly #storeId: string;
  readonly #clientId: string;
  #nextId = 0;
  #head = 0;
  #pullId = "";
  #headWaiters: { seq: number; resolve: () => void }[] = [];
  #exits = new Map<string, (frame: Frame) => void>();
  accepted = 0;
  rejected = 0;

  private constructor(socket: WebSocket, storeId: string, clientId: string) {
    this.#socket = socket;
    this.#storeId = storeId;
    this.#clientId = clientId;
    socket.addEventListener("message", (e) => this.#onFrame(JSON.parse(String(e.data))));
  }

  static async open(url: string, storeId: string, clientId: string): Promise<BenchClient> {
    const socket = new WebSocket(`${url}?storeId=${encodeURIComponent(storeId)}&transport=ws`);
    await new Promise((resolve, reject) => {
      socket.onopen = resolve;
      socket.onerror = reject;
    });
    const client = new BenchClient(socket, storeId, clientId);
    client.#pullId = client.#request("SyncWsRpc.Pull", {
      storeId,
      live: true,
      cursor: { _tag: "None" },
    });
    await client.#waitForHead(0);
    return client;
  }

  #onFrame(frame: Frame): void {
    if (frame._tag === "Chunk" && frame.requestId === this.#pullId) {
      const batch = frame.values[0].batch;
      const last = batch.at(-1);
      if (last) this.#head = Math.max(this.#head, last.eventEncoded.seqNum);
      this.#ready = true;
      for (const waiter of this.#headWaiters.filter((w) => this.#head >= w.seq)) waiter.resolve();
      this.#headWaiters = this.#headWaiters.filter((w) => this.#head < w.seq);
    } else if (frame._tag === "Exit") {
      this.#exits.get(frame.requestId)?.(frame);
      this.#exits.delete(frame.requestId);
    }
  }

  #ready = false;

  #waitForHead(seq: number): Promise<void> {
    if (this.#head >= seq && (seq > 0 || this.#ready)) return Promise.resolve();
    return new Promise((resolve) => this.#headWaiters.push({ seq, resolve }));
  }

  #request(tag: string, payload: unknown): string {
    const id = String(this.#nextId++);
    this.#socket.send(JSON.stringify({ _tag: "Request", id, tag, payload, headers: [] }));
    return id;
  }

  /** Pushes until `deadline` (performance.now() ms). */
  async run(deadline: number): Promise<void> {
    while (performance.now() < deadline) {
      const seq = this.#head + 1;
      const id = this.#request("SyncWsRpc.Push", {
        storeId: this.#storeId,
        backendId: { _tag: "None" },
        batch: [{
          name: "v1.TodoCreated",
          args: { id: `${this.#clientId}-${seq}`, text: "benchmark event with a little text" },
          seqNum: seq,
          parentSeqNum: seq - 1,
          clientId: this.#clientId,
          sessionId: `${this.#clientId}-s`,
        }],
      });
      const exit = await new Promise<Frame>((resolve) => this.#exits.set(id, resolve));
      if (exit.exit._tag === "Success") {
        this.accepted++;
        this.#head = Math.max(this.#head, seq);
      } else if (exit.exit.cause?.error?._tag === "ServerAheadError") {
        this.rejected++;
        // As the real client does: wait for the live pull to bring the events we missed.
        await this.#waitForHead(exit.exit.cause.error.minimumExpectedNum);
      } else {
        throw new Error(`unexpected push result ${JSON.stringify(exit)}`);
      }
    }
  }

  async close(): Promise<void> {
    const closed = new Promise((resolve) => this.#socket.addEventListener("close", resolve));
    this.#socket.close();
    await closed;
  }
}

async function pushScenario(url: string, stores: number, clientsPerStore: number) {
  const clients: BenchClient[] = [];
  for (let s = 0; s < stores; s++) {
    for (let c = 0; c < clientsPerStore; c++) {
      clients.push(await BenchClient.open(url, `bench-${stores}-${s}`, `c${c}`));
    }
  }
  const started = performance.now();
  await Promise.all(clients.map((client) => client.run(started + SECONDS * 1000)));
  const elapsed = (performance.now() - started) / 1000;
  const accepted = clients.reduce((sum, c) => sum + c.accepted, 0);
  const rejected = clients.reduce((sum, c) => sum + c.rejected, 0);
  await Promise.all(clients.map((client) => client.close()));
  return { accepted, rejected, elapsed };
}

async function pullScenario(url: string, database: Database) {
  const store = new PostgresEventStore(database);
  await store.open("bench-pull");
  const seedStarted = performance.now();
  for (let from = 1; from <= PULL_EVENTS; from += 1000) {
    const batch = [];
    for (let seq = from; seq < Math.min(from + 1000, PULL_EVENTS + 1); seq++) {
      batch.push({
        seqNum: seq,
        parentSeqNum: seq - 1,
        name: "v1.TodoCreated",
        argsJson: JSON.stringify({ id: `todo-${seq}`, text: "benchmark event with a little text" }),
        clientId: "seed",
        sessionId: "seed-s",
      });
    }
    const result = await store.append("bench-pull", batch);
    if (!result.ok) throw new Error("seeding failed");
  }
  const seedSeconds = (performance.now() - seedStarted) / 1000;

  const socket = new WebSocket(`${url}?storeId=bench-pull&transport=ws`);
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = reject;
  });
  let events = 0;
  let chunks = 0;
  let bytes = 0;
  let maxChunk = 0;
  const started = performance.now();
  await new Promise<void>((resolve) => {
    socket.onmessage = (e) => {
      const text = String(e.data);
      const frame = JSON.parse(text);
      if (frame._tag === "Chunk") {
        chunks++;
        bytes += text.length;
        const n = frame.values[0].batch.length;
        events += n;
        maxChunk = Math.max(maxChunk, n);
        socket.send(JSON.stringify({ _tag: "Ack", requestId: frame.requestId }));
      } else if (frame._tag === "Exit") resolve();
    };
    socket.send(JSON.stringify({
      _tag: "Request",
      id: "0",
      tag: "SyncWsRpc.Pull",
      payload: { storeId: "bench-pull", live: false, cursor: { _tag: "None" } },
      headers: [],
    }));
  });
  const seconds = (performance.now() - started) / 1000;
  const closed = new Promise((resolve) => socket.addEventListener("close", resolve));
  socket.close();
  await closed;
  if (events !== PULL_EVENTS) throw new Error(`pulled ${events} of ${PULL_EVENTS} events`);
  return { events, chunks, bytes, maxChunk, seconds, seedSeconds };
}

async function main() {
  const scratch = await openTestDatabase();
  // The app gets the production default pool size (DATABASE_POOL_SIZE=10), not the tests' small pool.
  const database: Database = scratch.url
    ? openPostgres({ url: scratch.url, poolSize: 10 })
    : scratch;
  const kv = await Deno.openKv(":memory:");
  const lifecycle = new Lifecycle();
  // Throughput, not a client's fair share: no per-client push limit.
  const base = testConfig();
  const config = { ...base, livestore: { ...base.livestore, pushesPerMinute: 0 } };
  const app = createApp({ config, kv, database, log: silentLogger, lifecycle });
  let resolvePort: (port: number) => void;
  const listening = new Promise<number>((resolve) => (resolvePort = resolve));
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen: ({ port }) => resolvePort(port) },
    app.fetch,
  );
  const url = `ws://127.0.0.1:${await listening}/livestore`;
  const rows: string[][] = [];
  try {
    console.log(`engine: ${database.kind}, ${SECONDS} s per push scenario`);
    for (const [stores, perStore] of [[1, 10], [100, 2]] as const) {
      const r = await pushScenario(url, stores, perStore);
      rows.push([
        `push ${stores} store${stores > 1 ? "s" : ""} × ${perStore} clients`,
        `${Math.round(r.accepted / r.elapsed).toLocaleString("en")} events/s accepted`,
        `${r.accepted.toLocaleString("en")} accepted, ${
          r.rejected.toLocaleString("en")
        } ServerAhead retries`,
      ]);
    }
    const p = await pullScenario(url, database);
    rows.push([
      `pull ${p.events.toLocaleString("en")}-event log`,
      `${Math.round(p.events / p.seconds).toLocaleString("en")} events/s`,
      `${p.seconds.toFixed(2)} s, ${p.chunks} chunks (≤${p.maxChunk} events), ${
        (p.bytes / p.seconds / 1e6).toFixed(1)
      } MB/s; seeding ${Math.round(p.events / p.seedSeconds).toLocaleString("en")} events/s`,
    ]);
  } finally {
    await lifecycle.drain();
    await server.shutdown();
    if (database !== scratch) await database.close();
    await scratch[Symbol.asyncDispose]();
    kv.close();
  }
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((row) => row[i]!.length)));
  for (const row of rows) console.log(row.map((cell, i) => cell.padEnd(widths[i]!)).join("  "));
}

if (import.meta.main) await main();

/**
 * Zero next to the user-data channel: `deno run -A bench/zero_bench.ts [--mutations=N]`.
 *
 * The same change (a user renames one of their files, waiting for each verdict before the next)
 * through both transports of one server: real Zero clients (`@rocicorp/zero`, in this process)
 * through a real zero-cache (Node 22, zero_cache/) on a private Postgres with logical WAL, and the
 * user-data channel's WebSocket (`mutate` → `commit`). For 1 user and for 50 users at once it
 * prints mutations/s and the latency of one mutation's verdict (Zero: `.server`, which the client
 * learns through replication; the channel: `commit`).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { freePort } from "../tests/helpers/ports.ts";
import { Zero } from "@rocicorp/zero";
import { testConfig } from "../config.ts";
import { silentLogger } from "../log.ts";
import { createApp } from "../routes/app.ts";
import { Lifecycle } from "../routes/lifecycle.ts";
import { mutators, queries, schema } from "../sync/zero/mod.ts";
import { startZeroCache } from "../zero_cache/run.ts";
import {
  logicalPostgresAvailability,
  startLogicalPostgres,
} from "../tests/helpers/logical_postgres.ts";
import { UserSyncClient } from "../tests/helpers/user_sync_client.ts";
import { summarize } from "./latency_stats.ts";
import { formatLatency, renderTable } from "./report_table.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { mutations: { type: "string", default: "200" } },
});
/** Mutations per scenario (split between the users). */
const MUTATIONS = Number(values.mutations);

interface Result {
  mutations: number;
  seconds: number;
  latencies: number[];
}

async function token(url: string, userId: string): Promise<string> {
  const response = await fetch(`${url}/auth/dev/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ userId, name: userId }),
  });
  return (await response.json()).token;
}

/** Each user renames their file `perUser` times through Zero, one verdict at a time. */
async function zeroScenario(
  cacheURL: string,
  users: { id: string; token: string; fileId: string }[],
  perUser: number,
): Promise<Result> {
  type Client = { run(q: unknown, o: unknown): Promise<unknown>; close(): Promise<void> };
  const clients = users.map((user) =>
    new Zero({
      cacheURL,
      userID: user.id,
      auth: user.token,
      schema,
      mutators,
      context: { userID: user.id },
      kvStore: "mem",
    })
  );
  // Connected and synced before the clock starts.
  await Promise.all(
    clients.map((zero) => (zero as unknown as Client).run(queries.files(), { type: "complete" })),
  );
  const latencies: number[] = [];
  const started = performance.now();
  await Promise.all(users.map(async (user, index) => {
    // deno-lint-ignore no-explicit-any
    const zero = clients[index] as any;
    for (let i = 0; i < perUser; i++) {
      const t0 = performance.now();
      const result = await zero.mutate(mutators.file.update({ id: user.fileId, name: `z${i}` }))
        .server;
      if (result.type !== "success") {
        throw new Error(`zero mutation failed: ${JSON.stringify(result)}`);
      }
      latencies.push(performance.now() - t0);
    }
  }));
  const seconds = (performance.now() - started) / 1000;
  await Promise.all(clients.map((zero) => zero.close()));
  return { mutations: users.length * perUser, seconds, latencies };
}

/** The same renames over the user-data channel (`mutate` → `commit`). */
async function channelScenario(
  wsUrl: string,
  users: { id: string; token: string; fileId: string }[],
  perUser: number,
): Promise<Result> {
  const clients = await Promise.all(users.map(async (user) => {
    const params = new URLSearchParams({
      sessionId: crypto.randomUUID(),
      protocolVersion: "2",
      token: user.token,
    });
    const client = new UserSyncClient(`${wsUrl}/app/${user.id}/connect?${params}`);
    await client.opened;
    await client.initialData();
    return client;
  }));
  const latencies: number[] = [];
  const started = performance.now();
  await Promise.all(users.map(async (user, index) => {
    const client = clients[index]!;
    for (let i = 0; i < perUser; i++) {
      const t0 = performance.now();
      const outcome = await client.mutate(`m${i}`, [{
        table: "file",
        event: "update",
        row: { id: user.fileId, name: `c${i}`, updatedAt: Date.now() },
      }]);
      if (outcome.type !== "commit") {
        throw new Error(`channel mutation failed: ${JSON.stringify(outcome)}`);
      }
      latencies.push(performance.now() - t0);
    }
  }));
  const seconds = (performance.now() - started) / 1000;
  await Promise.all(clients.map((client) => client.close()));
  return { mutations: users.length * perUser, seconds, latencies };
}

async function main(): Promise<void> {
  const availability = await logicalPostgresAvailability();
  if (!availability.available) {
    console.log(`zero benchmark skipped: ${availability.reason}`);
    return;
  }
  await using pg = await startLogicalPostgres();
  const database = await pg.createDatabase("app");
  const kv = await Deno.openKv(":memory:");
  const lifecycle = new Lifecycle();
  const base = testConfig();
  const app = createApp({
    config: {
      ...base,
      auth: { ...base.auth, devIdentityProvider: true },
      limits: { ...base.limits, maxMessageBytes: 4 * 1024 * 1024 },
    },
    kv,
    database,
    log: silentLogger,
    lifecycle,
    // Throughput, not a user's fair share.
    userData: {
      service: {
        connectRate: { limit: 1_000_000, windowMs: 60_000 },
        mutationRate: { limit: 1_000_000, windowMs: 10_000 },
      },
    },
  });
  const { promise: listening, resolve } = Promise.withResolvers<number>();
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen: ({ port }) => resolve(port) },
    app.fetch,
  );
  const port = await listening;
  const url = `http://127.0.0.1:${port}`;
  const replica = await Deno.makeTempDir({ prefix: "zero_bench_" });
  const rows: string[][] = [];
  try {
    await using cache = await startZeroCache({
      upstreamDb: pg.urlOf("app"),
      replicaFile: `${replica}/replica.db`,
      serverUrl: url,
      port: freePort(),
      output: "piped",
    });
    const users = await Promise.all(Array.from({ length: 50 }, async (_, i) => {
      const id = `bench-user-${i}`;
      const now = Date.now();
      const fileId = `bench-file-${i}-${crypto.randomUUID().replaceAll("-", "")}`.slice(0, 32);
      await database.db.insertInto("user").values({
        id,
        name: id,
        email: `${id}@x.test`,
        createdAt: now,
        updatedAt: now,
      }).execute();
      await database.db.insertInto("file").values({
        id: fileId,
        name: "bench",
        ownerId: id,
        publishedSlug: fileId,
        createdAt: now,
        updatedAt: now,
      }).execute();
      await database.db.insertInto("file_state").values({ userId: id, fileId }).execute();
      return { id, fileId, token: await token(url, id) };
    }));
    console.log(`${MUTATIONS} renames per scenario, each waiting for its verdict`);
    for (const count of [1, 50]) {
      const group = users.slice(0, count);
      const perUser = Math.max(1, Math.round(MUTATIONS / count));
      for (
        const [label, run] of [
          ["Zero (zero-cache)", () => zeroScenario(cache.url, group, perUser)],
          ["user-data channel", () => channelScenario(`ws://127.0.0.1:${port}`, group, perUser)],
        ] as const
      ) {
        const result = await run();
        rows.push([
          `${count} user${count > 1 ? "s" : ""}`,
          label,
          Math.round(result.mutations / result.seconds).toLocaleString("en"),
          formatLatency(summarize(result.latencies)),
        ]);
      }
    }
  } finally {
    await lifecycle.drain();
    await server.shutdown();
    await database.close();
    kv.close();
    await Deno.remove(replica, { recursive: true });
  }
  console.log(
    renderTable(
      ["users", "transport", "mutations/s", "verdict p50/p99/max ms"],
      rows,
      new Set([2]),
    ),
  );
}

if (import.meta.main) await main();

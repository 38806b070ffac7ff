/**
 * The real LiveStore client (@livestore/livestore + adapter-node + sync-cf 0.4.0, run as Deno subprocesses)
 * against this server. Each client boots in about a second; every wait is bounded.
 */
import assert from "node:assert/strict";
import { type Config, testConfig } from "../config.ts";
import type { Database } from "../db/database.ts";
import { openPostgres } from "../db/postgres.ts";
import { PostgresEventStore } from "../sync/livestore/postgres_event_store.ts";
import { openTestDatabase, TEST_DATABASE_URL } from "./helpers/db.ts";
import { LivestoreClient } from "./helpers/livestore_client.ts";
import { event, livestoreQuery, serveLivestore } from "./helpers/livestore_socket.ts";
import { startTestServer, type TestServer, type TestServerOptions } from "./helpers/server.ts";

/**
 * The app with LiveStore clients allowed without a JWT or token (`LIVESTORE_ANONYMOUS`): these
 * tests are about the protocol, not about access (tests/app/livestore_auth_test.ts is).
 */
function startOpenServer(options: TestServerOptions = {}): Promise<TestServer> {
  const livestore = { ...testConfig().livestore, ...options.config?.livestore, anonymous: true };
  return startTestServer({ ...options, config: { ...options.config, livestore } });
}

// @tldraw/utils (imported by the app) schedules a 100 ms timer when first imported; let it fire before
// the first test so the op sanitizer does not attribute it to that test.
await new Promise((resolve) => setTimeout(resolve, 150));

const syncUrl = (server: TestServer) => `${server.wsUrl}/livestore`;

async function head(database: Database, storeId: string): Promise<number> {
  return (await new PostgresEventStore(database).heads([storeId])).get(storeId) ?? 0;
}

async function waitForHead(database: Database, storeId: string, expected: number, ms = 15_000) {
  const deadline = Date.now() + ms;
  let current = await head(database, storeId);
  while (current < expected && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    current = await head(database, storeId);
  }
  assert.equal(current, expected, `server head of ${storeId}`);
}

/** A test server whose config carries LiveStore settings. */
function withLivestoreConfig(livestore: { authToken?: string }): Partial<Config> {
  return { livestore: { ...testConfig().livestore, authToken: livestore.authToken } };
}

Deno.test("two real LiveStore clients converge", async () => {
  await using server = await startOpenServer();
  await using a = await LivestoreClient.start({
    syncUrl: syncUrl(server),
    storeId: "s1",
    clientId: "a",
  });
  await using b = await LivestoreClient.start({
    syncUrl: syncUrl(server),
    storeId: "s1",
    clientId: "b",
  });
  await a.add(3, "a");
  await b.add(2, "b");
  const idsA = await a.waitForCount(5);
  const idsB = await b.waitForCount(5);
  assert.deepEqual(idsA, idsB);
  assert.deepEqual(idsA, ["a-000000", "a-000001", "a-000002", "b-000000", "b-000001"]);
  await waitForHead(server.deps.database, "s1", 5);
});

Deno.test("a late joiner catches up, then its own events reach the others", async () => {
  await using server = await startOpenServer();
  await using a = await LivestoreClient.start({
    syncUrl: syncUrl(server),
    storeId: "s1",
    clientId: "a",
  });
  await a.add(4, "a");
  await waitForHead(server.deps.database, "s1", 4);
  await using b = await LivestoreClient.start({
    syncUrl: syncUrl(server),
    storeId: "s1",
    clientId: "b",
  });
  assert.equal((await b.waitForCount(4)).length, 4);
  await b.add(1, "b");
  assert.deepEqual(await a.waitForCount(5), await b.waitForCount(5));
  await waitForHead(server.deps.database, "s1", 5);
});

Deno.test("concurrent first pushes: one gets ServerAheadError, rebases, both land", async () => {
  await using server = await startOpenServer();
  // Hold the first two pushes until both arrived, so that both carry parent 0 and race for the head.
  let arrived = 0;
  let release!: () => void;
  const bothArrived = new Promise<void>((resolve) => (release = resolve));
  const firstParents: number[] = [];
  await using livestore = await serveLivestore(server.deps, {
    hooks: {
      async onPush(request) {
        if (arrived++ >= 2) return;
        firstParents.push(request.batch[0]!.parentSeqNum);
        if (arrived === 2) release();
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([bothArrived, new Promise((r) => (timer = setTimeout(r, 5_000)))]);
        clearTimeout(timer);
      },
    },
  });
  await using a = await LivestoreClient.start({
    syncUrl: livestore.wsUrl,
    storeId: "s1",
    clientId: "a",
  });
  await using b = await LivestoreClient.start({
    syncUrl: livestore.wsUrl,
    storeId: "s1",
    clientId: "b",
  });
  await Promise.all([a.add(1, "a"), b.add(1, "b")]);
  const [idsA, idsB] = await Promise.all([a.waitForCount(2), b.waitForCount(2)]);
  assert.deepEqual(idsA, ["a-000000", "b-000000"]);
  assert.deepEqual(idsB, idsA);
  await waitForHead(server.deps.database, "s1", 2);
  // Both first pushes claimed parent 0; only one could land, so the other was refused (ServerAheadError)
  // and came back rebased as a third push.
  assert.deepEqual(firstParents, [0, 0]);
  assert.ok(arrived >= 3, `expected a re-push after the rebase, saw ${arrived} pushes`);
  // The loser's re-push was after the winner's event.
  const store = new PostgresEventStore(server.deps.database);
  const page = await store.read("s1", 0, 10);
  assert.deepEqual(page.events.map((e) => e.parentSeqNum), [0, 1]);
  assert.notEqual(page.events[0]!.clientId, page.events[1]!.clientId);
});

Deno.test("server restart keeps the log and backendId: a persisted client carries on", async () => {
  const storageDir = await Deno.makeTempDir({ prefix: "livestore-client-" });
  await using database = await openTestDatabase();
  try {
    {
      await using server = await startOpenServer({ database });
      await using a = await LivestoreClient.start({
        syncUrl: syncUrl(server),
        storeId: "s1",
        clientId: "a",
        storageDir,
      });
      await a.add(3, "a");
      await waitForHead(database, "s1", 3);
      assert.equal(await a.close(), true, "first client shut down cleanly");
    }
    // A new server process: new engine, no cached state; on Postgres also new connections.
    const second: Database = TEST_DATABASE_URL
      ? openPostgres({ url: database.url!, poolSize: 2 })
      : database;
    try {
      await using server = await startOpenServer({ database: second });
      await using a = await LivestoreClient.start({
        syncUrl: syncUrl(server),
        storeId: "s1",
        clientId: "a",
        storageDir,
      });
      assert.equal((await a.waitForCount(3)).length, 3);
      await a.add(1, "after-restart");
      await waitForHead(second, "s1", 4);
      await using b = await LivestoreClient.start({
        syncUrl: syncUrl(server),
        storeId: "s1",
        clientId: "b",
      });
      assert.equal((await b.waitForCount(4)).length, 4);
      assert.equal(a.lines.filter((line) => line.type === "shutdown").length, 0);
    } finally {
      if (second !== database) await second.close();
    }
  } finally {
    await Deno.remove(storageDir, { recursive: true });
  }
});

Deno.test("a connected client rides through a server restart on the same address", async () => {
  await using database = await openTestDatabase();
  const first = await startOpenServer({ database });
  const before = await serveLivestore(first.deps);
  await using a = await LivestoreClient.start({
    syncUrl: before.wsUrl,
    storeId: "s1",
    clientId: "a",
  });
  await a.add(2, "before");
  await waitForHead(database, "s1", 2);
  // Shutdown closes the socket with 1012; the client retries with backoff meanwhile.
  await before.close();
  await first.close();
  await using second = await startOpenServer({ database });
  await using after = await serveLivestore(second.deps, {}, before.port);
  await a.add(1, "after");
  await waitForHead(database, "s1", 3, 20_000);
  await using b = await LivestoreClient.start({
    syncUrl: after.wsUrl,
    storeId: "s1",
    clientId: "b",
  });
  assert.deepEqual(await b.waitForCount(3), ["after-000000", "before-000000", "before-000001"]);
  assert.equal(a.lines.filter((line) => line.type === "shutdown").length, 0);
});

Deno.test("a wiped backend (new backendId) makes a persisted client reset itself", async () => {
  const storageDir = await Deno.makeTempDir({ prefix: "livestore-client-" });
  try {
    {
      await using server = await startOpenServer();
      await using a = await LivestoreClient.start({
        syncUrl: syncUrl(server),
        storeId: "s1",
        clientId: "a",
        storageDir,
      });
      await a.add(2, "a");
      await waitForHead(server.deps.database, "s1", 2);
      // The client sends its last backendId only with a cursor, and it has a cursor only once a pull
      // confirmed events. Stopping right after the push (before its own events came back) would leave
      // it without one: it would then adopt the new backend silently. A third event from another client
      // reaching it proves its pull got past its own two.
      {
        await using b = await LivestoreClient.start({
          syncUrl: syncUrl(server),
          storeId: "s1",
          clientId: "b",
        });
        await b.add(1, "b");
        await waitForHead(server.deps.database, "s1", 3);
      }
      assert.deepEqual(await a.waitForCount(3), ["a-000000", "a-000001", "b-000000"]);
      assert.equal(await a.close(), true, "first client shut down cleanly");
    }
    await using fresh = await startOpenServer();
    // `shutdown` on sync errors: a mismatch that surfaces as a sync error ends the client too, with
    // its cause, instead of leaving it silently offline.
    await using a = await LivestoreClient.start({
      syncUrl: syncUrl(fresh),
      storeId: "s1",
      clientId: "a",
      storageDir,
      onSyncError: "shutdown",
    });
    // Its first pull carries the old backendId: BackendIdMismatchError, and the client shuts down (the
    // spec's observed behaviour).
    assert.match(await a.waitForShutdown(30_000), /backend-id-mismatch|BackendIdMismatch/);
  } finally {
    await Deno.remove(storageDir, { recursive: true });
  }
});

Deno.test("a client with a wrong auth token is rejected; the right token syncs", async () => {
  await using server = await startOpenServer({
    config: withLivestoreConfig({ authToken: "secret-token" }),
  });
  const rejected = await fetch(
    `${server.url}/livestore?${livestoreQuery("s1", { authToken: "wrong" })}`,
    { headers: { upgrade: "websocket" } },
  );
  assert.equal(rejected.status, 400);
  await rejected.body?.cancel();

  await using intruder = await LivestoreClient.start({
    syncUrl: syncUrl(server),
    storeId: "s1",
    clientId: "intruder",
    authToken: "wrong",
  });
  await intruder.add(2, "x");
  await using good = await LivestoreClient.start({
    syncUrl: syncUrl(server),
    storeId: "s1",
    clientId: "good",
    authToken: "secret-token",
  });
  await good.add(1, "g");
  await waitForHead(server.deps.database, "s1", 1);
  // Give the intruder's retries time: nothing of it may land.
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  assert.equal(await head(server.deps.database, "s1"), 1);
  assert.deepEqual(await good.ids(), ["g-000000"]);
});

Deno.test("live pulls across two server instances on one database", async () => {
  await using database = await openTestDatabase();
  const secondDb: Database = TEST_DATABASE_URL
    ? openPostgres({ url: database.url!, poolSize: 2 })
    : database;
  try {
    await using one = await startOpenServer({ database });
    await using two = await startOpenServer({ database: secondDb });
    await using a = await LivestoreClient.start({
      syncUrl: syncUrl(one),
      storeId: "s1",
      clientId: "a",
    });
    await using b = await LivestoreClient.start({
      syncUrl: syncUrl(two),
      storeId: "s1",
      clientId: "b",
    });
    await a.add(2, "a");
    assert.equal((await b.waitForCount(2)).length, 2);
    await b.add(2, "b");
    assert.deepEqual(await a.waitForCount(4), await b.waitForCount(4));
  } finally {
    if (secondDb !== database) await secondDb.close();
  }
});

Deno.test("without notifications, the head check still feeds live pulls (lost hints only delay)", async () => {
  await using server = await startOpenServer();
  await using quiet = await serveLivestore(server.deps, {
    notifications: false,
    headCheckIntervalMs: 300,
  });
  await using a = await LivestoreClient.start({
    syncUrl: syncUrl(server),
    storeId: "s1",
    clientId: "a",
  });
  await using b = await LivestoreClient.start({
    syncUrl: quiet.wsUrl,
    storeId: "s1",
    clientId: "b",
  });
  await a.add(3, "a");
  assert.equal((await b.waitForCount(3, 10_000)).length, 3);
});

Deno.test("a 10,000-event store reaches a new client in pages", async () => {
  await using server = await startOpenServer();
  const store = new PostgresEventStore(server.deps.database);
  await store.open("big");
  for (let from = 1; from <= 10_000; from += 1_000) {
    const batch = [];
    for (let seq = from; seq < from + 1_000; seq++) {
      const id = `big-${String(seq).padStart(6, "0")}`;
      batch.push({ ...event(seq, "seed"), argsJson: JSON.stringify({ id, text: "seeded" }) });
    }
    assert.ok((await store.append("big", batch)).ok);
  }
  await using client = await LivestoreClient.start({
    syncUrl: syncUrl(server),
    storeId: "big",
    clientId: "reader",
  });
  const ids = await client.waitForCount(10_000, 60_000);
  assert.equal(ids.length, 10_000);
  assert.equal(ids[0], "big-000001");
  assert.equal(ids.at(-1), "big-010000");
  // It can push on top of the big log.
  await client.add(1, "z");
  await waitForHead(server.deps.database, "big", 10_001);
});

Deno.test("the HTTP transport syncs with a WebSocket client", async () => {
  await using server = await startOpenServer();
  await using ws = await LivestoreClient.start({
    syncUrl: syncUrl(server),
    storeId: "s1",
    clientId: "ws",
  });
  await using http = await LivestoreClient.start({
    syncUrl: `${server.url}/livestore`,
    storeId: "s1",
    clientId: "http",
    transport: "http",
  });
  await ws.add(2, "w");
  await http.add(1, "h");
  assert.deepEqual(await ws.waitForCount(3), await http.waitForCount(3));
});

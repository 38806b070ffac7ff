/** The Postgres LiveStore event store on the test engine (PGlite, or Postgres with DATABASE_URL). */
import assert from "node:assert/strict";
import type { Database } from "../../db/database.ts";
import { openPostgres } from "../../db/postgres.ts";
import type { NewEvent } from "../../sync/livestore/event_store.ts";
import { PostgresEventStore } from "../../sync/livestore/postgres_event_store.ts";
import { openTestDatabase, TEST_DATABASE_URL } from "../helpers/db.ts";

const events = (from: number, count: number, clientId = "c"): NewEvent[] =>
  Array.from({ length: count }, (_, i) => ({
    seqNum: from + i,
    parentSeqNum: from + i - 1,
    name: "v1.Thing",
    argsJson: JSON.stringify({ n: from + i, text: "ünïcode ✓" }),
    clientId,
    sessionId: `${clientId}-s`,
  }));

Deno.test("open creates a store once, with a durable backendId", async () => {
  await using database = await openTestDatabase();
  const first = await new PostgresEventStore(database).open("s1");
  const again = await new PostgresEventStore(database).open("s1");
  assert.equal(first.head, 0);
  assert.equal(again.backendId, first.backendId);
  assert.match(first.backendId, /^[A-Za-z0-9_-]{21}$/);
  const other = await new PostgresEventStore(database).open("s2");
  assert.notEqual(other.backendId, first.backendId);
});

Deno.test("append checks the head; read returns events in order with args as sent", async () => {
  await using database = await openTestDatabase();
  const store = new PostgresEventStore(database, { now: () => 1_700_000_000_000 });
  await store.open("s1");
  assert.deepEqual(await store.append("s1", events(1, 3)), {
    ok: true,
    head: 3,
    createdAt: 1_700_000_000_000,
  });
  assert.deepEqual(await store.append("s1", events(2, 1)), {
    ok: false,
    reason: "server_ahead",
    head: 3,
  });
  assert.ok((await store.append("s1", [{ ...events(4, 1)[0]!, argsJson: null }])).ok);
  const page = await store.read("s1", 1, 10);
  assert.equal(page.head, 4);
  assert.deepEqual(page.events.map((e) => e.seqNum), [2, 3, 4]);
  assert.equal(page.events[0]!.argsJson, JSON.stringify({ n: 2, text: "ünïcode ✓" }));
  assert.equal(page.events[2]!.argsJson, null);
  assert.equal(page.events[0]!.createdAt, 1_700_000_000_000);
  assert.deepEqual((await store.read("s1", 4, 10)).events, []);
  assert.deepEqual(await store.heads(["s1", "missing"]), new Map([["s1", 4]]));
});

Deno.test("concurrent appends on one parent from two connections: exactly one lands", async () => {
  await using database = await openTestDatabase();
  // With a real server the second store uses its own connection pool, like another process would.
  const second: Database = TEST_DATABASE_URL
    ? openPostgres({ url: database.url!, poolSize: 2 })
    : database;
  try {
    const a = new PostgresEventStore(database);
    const b = new PostgresEventStore(second);
    await a.open("s1");
    for (let round = 0; round < 20; round++) {
      const parent = round;
      const results = await Promise.all([
        a.append("s1", events(parent + 1, 1, "a")),
        b.append("s1", events(parent + 1, 1, "b")),
      ]);
      assert.equal(results.filter((r) => r.ok).length, 1, `round ${round}`);
      assert.deepEqual(results.find((r) => !r.ok), {
        ok: false,
        reason: "server_ahead",
        head: parent + 1,
      });
    }
    const page = await a.read("s1", 0, 100);
    assert.deepEqual(page.events.map((e) => e.seqNum), Array.from({ length: 20 }, (_, i) => i + 1));
  } finally {
    if (second !== database) await second.close();
  }
});

Deno.test("a commit publishes a head notice; a rejected append does not", async () => {
  await using database = await openTestDatabase();
  const notices: string[] = [];
  const unlisten = await database.notifier.listen("livestore_test", (p) => notices.push(p));
  try {
    const store = new PostgresEventStore(database, {
      notifyChannel: "livestore_test",
      instanceId: "me",
    });
    await store.open("s1");
    await store.append("s1", events(1, 2));
    await store.append("s1", events(1, 1));
    const deadline = Date.now() + 2_000;
    while (notices.length < 1 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(notices.map((n) => JSON.parse(n)), [{ s: "s1", h: 2, i: "me" }]);
  } finally {
    await unlisten();
  }
});

import assert from "node:assert/strict";
import type { Database } from "../../db/database.ts";
import { silentLogger } from "../../log.ts";
import { ChangeFeed, type FileChangeEvent } from "../../sync/user/change_feed.ts";
import type { ChangeRecord } from "../../sync/user/change_records.ts";
import { openTestDatabase, TEST_ENGINE } from "../helpers/db.ts";
import { eventually } from "../helpers/wait.ts";

const engine = `[${TEST_ENGINE}]`;

async function exec(database: Database, script: string, params: unknown[] = []) {
  return await database.rawTransaction((session) => session.query(script, params));
}

async function seedUsers(database: Database, ...ids: string[]) {
  for (const id of ids) {
    await exec(
      database,
      `INSERT INTO "user" ("id", "name", "email", "createdAt", "updatedAt") VALUES ($1, $1, '', 1, 1)`,
      [id],
    );
  }
}

async function insertFile(database: Database, id: string, ownerId: string, shared = false) {
  await exec(
    database,
    `INSERT INTO "file" ("id", "name", "ownerId", "publishedSlug", "createdAt", "updatedAt", "shared")
     VALUES ($1, $1, $2, $1, 1, 1, $3)`,
    [id, ownerId, shared],
  );
}

function collect(feed: ChangeFeed) {
  const seen: ChangeRecord[] = [];
  const stop = feed.subscribe((records) => seen.push(...records));
  return { seen, stop };
}

Deno.test(`${engine} change feed: triggers record owner and guests; NOTIFY wakes the reader`, async () => {
  await using database = await openTestDatabase();
  const feed = new ChangeFeed(database, silentLogger, { pollIntervalMs: 60_000 });
  try {
    const { seen } = collect(feed);
    await feed.ready();
    await seedUsers(database, "owner", "guest");
    await insertFile(database, "f1", "owner", true);
    await exec(database, `INSERT INTO "file_state" ("userId", "fileId") VALUES ('guest', 'f1')`);
    await exec(database, `UPDATE "file" SET "name" = 'renamed' WHERE "id" = 'f1'`);
    await exec(database, `UPDATE "file" SET "shared" = FALSE WHERE "id" = 'f1'`);
    await eventually(() => seen.length >= 9, 3_000, "9 changes");
    const summary = seen.map((r) => `${r.table}:${r.event}:${[...r.userIds].sort().join("+")}`);
    assert.deepEqual(summary, [
      "user:insert:owner",
      "user:insert:guest",
      "file:insert:owner",
      "file:grant:guest",
      "file_state:insert:guest",
      "file:update:guest+owner",
      "file_state:delete:guest",
      "file:revoke:guest",
      "file:update:owner",
    ]);
    const seqs = seen.map((r) => r.seq);
    assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
  } finally {
    await feed.stop();
  }
});

Deno.test(`${engine} change feed: deleting a file reaches its guests (captured before the cascade)`, async () => {
  await using database = await openTestDatabase();
  const feed = new ChangeFeed(database, silentLogger, { pollIntervalMs: 100 });
  try {
    await seedUsers(database, "owner", "guest");
    await insertFile(database, "f1", "owner", true);
    await exec(database, `INSERT INTO "file_state" ("userId", "fileId") VALUES ('guest', 'f1')`);
    const { seen } = collect(feed);
    const fileEvents: FileChangeEvent[] = [];
    feed.onFileChanged((event) => fileEvents.push(event));
    await feed.ready();
    await exec(database, `DELETE FROM "file" WHERE "id" = 'f1'`);
    await eventually(() => seen.length >= 2, 3_000, "delete changes");
    const fileDelete = seen.find((r) => r.table === "file" && r.event === "delete");
    assert.ok(fileDelete);
    assert.deepEqual([...fileDelete.userIds].sort(), ["guest", "owner"]);
    assert.ok(seen.some((r) => r.table === "file_state" && r.event === "delete"));
    assert.deepEqual(fileEvents.map((e) => `${e.kind}:${e.fileId}`), ["deleted:f1"]);
  } finally {
    await feed.stop();
  }
});

Deno.test(`${engine} change feed: a lower seq committing late is still delivered, once`, async () => {
  await using database = await openTestDatabase();
  const feed = new ChangeFeed(database, silentLogger, { pollIntervalMs: 50, gapTimeoutMs: 5_000 });
  try {
    await seedUsers(database, "u");
    const { seen } = collect(feed);
    await feed.ready();
    // Take a seq now and commit its row later, as a slow concurrent transaction would.
    const [{ seq: late }] = await exec(
      database,
      `SELECT nextval(pg_get_serial_sequence('"user_change"', 'seq'))::INT AS "seq"`,
    ) as [{ seq: number }];
    await exec(database, `UPDATE "user" SET "name" = 'second' WHERE "id" = 'u'`);
    await eventually(() => seen.some((r) => r.row.name === "second"), 3_000, "higher seq");
    await new Promise((resolve) => setTimeout(resolve, 150));
    await exec(
      database,
      `INSERT INTO "user_change" ("seq", "userIds", "table", "event", "row")
       VALUES ($1, '{u}', 'user', 'update', '{"id": "u", "name": "first"}')`,
      [late],
    );
    await eventually(() => seen.some((r) => r.seq === late), 3_000, "late seq");
    await new Promise((resolve) => setTimeout(resolve, 200));
    const seqs = seen.map((r) => r.seq);
    assert.equal(new Set(seqs).size, seqs.length, "no change delivered twice");
    assert.ok(feed.lowWatermark >= late);
  } finally {
    await feed.stop();
  }
});

Deno.test(`${engine} change feed: a hole that never fills is given up after the gap timeout`, async () => {
  await using database = await openTestDatabase();
  const feed = new ChangeFeed(database, silentLogger, { pollIntervalMs: 30, gapTimeoutMs: 100 });
  try {
    await seedUsers(database, "u");
    collect(feed);
    await feed.ready();
    const start = feed.lowWatermark;
    await exec(database, `SELECT nextval(pg_get_serial_sequence('"user_change"', 'seq'))`);
    await exec(database, `UPDATE "user" SET "name" = 'x' WHERE "id" = 'u'`);
    await eventually(() => feed.lowWatermark === start + 2, 3_000, "watermark past the hole");
  } finally {
    await feed.stop();
  }
});

Deno.test(`${engine} change feed: own deliveries are not repeated by the reader`, async () => {
  await using database = await openTestDatabase();
  const feed = new ChangeFeed(database, silentLogger, { pollIntervalMs: 30 });
  try {
    await seedUsers(database, "u");
    const { seen } = collect(feed);
    await feed.ready();
    const own = await database.rawTransaction(async (session) => {
      await session.query(`UPDATE "user" SET "name" = 'mine' WHERE "id" = 'u'`);
      return await session.query<{ seq: number }>(
        `SELECT "seq" FROM "user_change" WHERE "txid" = txid_current()`,
      );
    });
    const record: ChangeRecord = {
      seq: Number(own[0]!.seq),
      userIds: ["u"],
      table: "user",
      event: "update",
      row: { id: "u", name: "mine" },
      before: null,
    };
    feed.deliverOwn([record]);
    await exec(database, `UPDATE "user" SET "name" = 'after' WHERE "id" = 'u'`);
    await eventually(() => seen.some((r) => r.row.name === "after"), 3_000, "later change");
    feed.deliverOwn([record]);
    assert.deepEqual(seen.map((r) => r.row.name), ["mine", "after"]);
  } finally {
    await feed.stop();
  }
});

Deno.test(`${engine} change feed: old changes are pruned`, async () => {
  await using database = await openTestDatabase();
  const feed = new ChangeFeed(database, silentLogger, {
    pollIntervalMs: 30,
    retentionMs: 0,
    pruneIntervalMs: 50,
  });
  try {
    await seedUsers(database, "u");
    collect(feed);
    await feed.ready();
    await eventually(
      async () => {
        const [{ count }] = await exec(
          database,
          `SELECT count(*)::INT AS "count" FROM "user_change"`,
        ) as [
          { count: number },
        ];
        return count === 0;
      },
      3_000,
      "pruned",
    );
  } finally {
    await feed.stop();
  }
});

Deno.test(`${engine} change feed: a transaction in flight when the reader starts is not lost`, async () => {
  await using database = await openTestDatabase();
  const feed = new ChangeFeed(database, silentLogger, { pollIntervalMs: 30 });
  try {
    await seedUsers(database, "u");
    const [{ seq: inFlight }] = await exec(
      database,
      `SELECT nextval(pg_get_serial_sequence('"user_change"', 'seq'))::INT AS "seq"`,
    ) as [{ seq: number }];
    await exec(database, `UPDATE "user" SET "name" = 'later' WHERE "id" = 'u'`);
    const { seen } = collect(feed);
    await feed.ready();
    await exec(
      database,
      `INSERT INTO "user_change" ("seq", "userIds", "table", "event", "row")
       VALUES ($1, '{u}', 'user', 'update', '{"id": "u", "name": "in flight"}')`,
      [inFlight],
    );
    await eventually(() => seen.some((r) => r.seq === inFlight), 3_000, "in-flight seq");
    assert.ok(
      !seen.some((r) => r.row.name === "later"),
      "history before the start is not replayed",
    );
  } finally {
    await feed.stop();
  }
});

Deno.test({
  name: `${engine} change feed: real concurrent transactions committing out of seq order`,
  // PGlite runs one transaction at a time; only a server can interleave them.
  ignore: TEST_ENGINE !== "postgres",
  fn: async () => {
    await using database = await openTestDatabase();
    const feed = new ChangeFeed(database, silentLogger, { pollIntervalMs: 50 });
    let release: (() => void) | undefined;
    try {
      await seedUsers(database, "slow", "fast");
      const { seen } = collect(feed);
      await feed.ready();
      const released = new Promise<void>((resolve) => (release = resolve));
      let written!: () => void;
      const wrote = new Promise<void>((resolve) => (written = resolve));
      const slow = database.rawTransaction(async (session) => {
        await session.query(`UPDATE "user" SET "name" = 'slow!' WHERE "id" = 'slow'`);
        written();
        await released;
      });
      await wrote;
      await exec(database, `UPDATE "user" SET "name" = 'fast!' WHERE "id" = 'fast'`);
      await eventually(() => seen.some((r) => r.row.name === "fast!"), 3_000, "fast change");
      assert.ok(!seen.some((r) => r.row.name === "slow!"));
      release!();
      await slow;
      await eventually(() => seen.some((r) => r.row.name === "slow!"), 3_000, "slow change");
      const slowSeq = seen.find((r) => r.row.name === "slow!")!.seq;
      const fastSeq = seen.find((r) => r.row.name === "fast!")!.seq;
      assert.ok(slowSeq < fastSeq, "the late one had the lower seq");
    } finally {
      release?.();
      await feed.stop();
    }
  },
});

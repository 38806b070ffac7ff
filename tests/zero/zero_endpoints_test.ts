/**
 * The Zero endpoints as zero-cache calls them (specs/zero-sync.md), against the real database with
 * the shard tables zero-cache would have made: mutation ids, replays, gaps, app errors, the cleanup
 * mutation, versions, parse failures, every rule of the mutator table, the queries, and auth.
 */
import assert from "node:assert/strict";
import { sql } from "kysely";
import { TEST_ENGINE } from "../helpers/db.ts";
import { type AuthServer, fileRow, startAuthServer } from "../helpers/user_sync_client.ts";
import {
  createZeroShardTables,
  postZero,
  pushBody,
  type TestMutation,
  zeroFileId,
} from "../helpers/zero.ts";

const engine = `[${TEST_ENGINE}]`;

async function zeroServer(): Promise<AuthServer & { push: Pusher; query: Querier }> {
  const server = await startAuthServer({ limits: { maxFilesPerUser: 3 } });
  await createZeroShardTables(server.deps.database);
  const push: Pusher = async (userId, mutations, options) =>
    await postZero(
      `${server.url}/app/zero/push`,
      userId === null ? null : await server.token(userId),
      pushBody(mutations, options),
    );
  const query: Querier = async (userId, body) =>
    await postZero(`${server.url}/app/zero/query`, await server.token(userId), body);
  return Object.assign(server, { push, query });
}

type Pusher = (
  userId: string | null,
  mutations: TestMutation[],
  options?: { clientGroupID?: string; pushVersion?: number },
) => ReturnType<typeof postZero>;
type Querier = (userId: string, body: unknown) => ReturnType<typeof postZero>;

/** The result of each mutation of a MutateResponse. */
function results(body: Record<string, unknown>): unknown[] {
  assert.equal(body.kind, "MutateResponse", JSON.stringify(body));
  return (body.mutations as { result: unknown }[]).map((mutation) => mutation.result);
}

async function lastMutationId(server: AuthServer, clientID = "c1"): Promise<number | undefined> {
  const rows = await sql<{ lastMutationID: number | string }>`
    SELECT "lastMutationID" FROM "zero_0"."clients" WHERE "clientID" = ${clientID}
  `.execute(server.deps.database.db);
  return rows.rows[0] === undefined ? undefined : Number(rows.rows[0].lastMutationID);
}

/** The first correlated subquery in a query AST. */
function findSubquery(node: unknown): { table: string; where: unknown } | undefined {
  if (typeof node !== "object" || node === null) return undefined;
  const record = node as Record<string, unknown>;
  if (record.type === "correlatedSubquery") {
    return (record.related as { subquery: { table: string; where: unknown } }).subquery;
  }
  for (const value of Object.values(record)) {
    const found = findSubquery(value);
    if (found) return found;
  }
  return undefined;
}

function newFile(id: string, ownerId: string, extra: Record<string, unknown> = {}) {
  return {
    file: fileRow(id, ownerId, extra),
    fileState: { userId: ownerId, fileId: id, isFileOwner: true },
  };
}

async function storedFile(server: AuthServer, id: string) {
  return await server.deps.database.db.selectFrom("file").selectAll().where("id", "=", id)
    .executeTakeFirst();
}

Deno.test(`${engine} zero push: ids, replays, gaps, app errors, cleanup, versions, parse failures`, async () => {
  await using server = await zeroServer();
  const id = zeroFileId("a");
  const ok = await server.push("alice", [
    { id: 1, name: "user.insert", args: { id: "alice", name: "Alice", email: "a@x.test" } },
    { id: 2, name: "file.insertWithFileState", args: newFile(id, "alice") },
  ]);
  assert.equal(ok.status, 200);
  assert.deepEqual(results(ok.body), [{}, {}]);
  assert.equal(ok.body.userID, "alice");
  assert.equal(await lastMutationId(server), 2);
  assert.equal((await storedFile(server, id))?.name, `File ${id}`);

  // A replay is alreadyProcessed and changes nothing.
  const replay = await server.push("alice", [
    { id: 2, name: "file.update", args: { id, name: "replayed" } },
  ]);
  assert.deepEqual(
    (results(replay.body) as { error: string }[]).map((result) => result.error),
    ["alreadyProcessed"],
  );
  assert.equal((await storedFile(server, id))?.name, `File ${id}`);

  // A gap stops the push: PushFailed/oooMutation, nothing applied.
  const gap = await server.push("alice", [{
    id: 5,
    name: "file.update",
    args: { id, name: "gap" },
  }]);
  assert.equal(gap.body.kind, "PushFailed");
  assert.equal(gap.body.reason, "oooMutation");
  assert.equal(await lastMutationId(server), 2);

  // An app error: the id is used up, the error is recorded, the writes are rolled back.
  const refused = await server.push("bob", [
    { id: 1, name: "file.update", args: { id, name: "stolen" }, clientID: "bob-client" },
  ], { clientGroupID: "bob-group" });
  const [refusal] = results(refused.body) as { error: string; message: string }[];
  assert.equal(refusal!.error, "app");
  assert.equal(refusal!.message, "forbidden");
  assert.equal((await storedFile(server, id))?.name, `File ${id}`);
  assert.equal(await lastMutationId(server, "bob-client"), 1);
  const recorded = await sql<{ mutationID: number | string; result: { error: string } }>`
    SELECT "mutationID", "result" FROM "zero_0"."mutations" WHERE "clientID" = 'bob-client'
  `.execute(server.deps.database.db);
  assert.deepEqual(recorded.rows.map((row) => [Number(row.mutationID), row.result.error]), [
    [1, "app"],
  ]);

  // zero-cache's internal cleanup: deletes acknowledged results, no LMID change, no entry.
  const cleanup = await postZero(`${server.url}/app/zero/push`, await server.token("bob"), {
    clientGroupID: "bob-group",
    timestamp: Date.now(),
    pushVersion: 1,
    requestID: "cleanup",
    mutations: [{
      type: "custom",
      id: 0,
      clientID: "bob-client",
      name: "_zero_cleanupResults",
      timestamp: Date.now(),
      args: [{ clientGroupID: "bob-group", clientID: "bob-client", upToMutationID: 1 }],
    }],
  });
  assert.equal(cleanup.status, 200);
  assert.deepEqual(results(cleanup.body), []);
  assert.equal(await lastMutationId(server, "bob-client"), 1);
  const left = await sql`SELECT 1 FROM "zero_0"."mutations" WHERE "clientID" = 'bob-client'`
    .execute(server.deps.database.db);
  assert.equal(left.rows.length, 0);

  // Versions and shapes Zero does not speak.
  const v2 = await server.push("alice", [{ id: 3, name: "user.update", args: { id: "alice" } }], {
    pushVersion: 2,
  });
  assert.equal(v2.body.kind, "PushFailed");
  assert.equal(v2.body.reason, "unsupportedPushVersion");
  const parse = await postZero(`${server.url}/app/zero/push`, await server.token("alice"), {
    clientGroupID: 7,
    mutations: "nope",
  });
  assert.equal(parse.body.kind, "PushFailed");
  assert.equal(parse.body.reason, "parse");
  // Not JSON at all: a plain 400 with the server's error body.
  const notJson = await postZero(
    `${server.url}/app/zero/push`,
    await server.token("alice"),
    "{oops",
  );
  assert.equal(notJson.status, 400);
  assert.equal(await lastMutationId(server), 2);
});

Deno.test(`${engine} zero push: unknown mutators, wrong shapes and oversized bodies change nothing`, async () => {
  await using server = await zeroServer();
  const answers = results(
    (await server.push("alice", [
      { id: 1, name: "file.burnItAll", args: {} },
      { id: 2, name: "file.update", args: { id: 42 } },
      { id: 3, name: "file.insertWithFileState", args: newFile("short", "alice") },
      { id: 4, name: "user.insert", args: { id: "alice", isAdmin: true } },
      { id: 5, name: "file.insertWithFileState", args: { file: "x" } },
    ])).body,
  ) as { error: string; message: string }[];
  assert.deepEqual(answers.map((a) => [a.error, a.message]), [
    ["app", "bad_request"],
    ["app", "bad_request"],
    ["app", "bad_request"],
    ["app", "bad_request"],
    ["app", "bad_request"],
  ]);
  const { db } = server.deps.database;
  assert.deepEqual(await db.selectFrom("file").select("id").execute(), []);
  assert.deepEqual(
    await db.selectFrom("user").select("id").where("id", "=", "alice").execute(),
    [],
  );
  const huge = await fetch(`${server.url}/app/zero/push?schema=zero_0&appID=zero`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${await server.token("alice")}`,
      "content-type": "application/json",
    },
    body: JSON.stringify(
      pushBody([{
        id: 6,
        name: "user.update",
        args: { id: "alice", name: "x".repeat(server.deps.config.limits.maxMessageBytes) },
      }]),
    ),
  });
  assert.equal(huge.status, 413);
  await huge.body?.cancel();
});

Deno.test(`${engine} zero push: every rule of the mutator table, allowed and refused`, async () => {
  await using server = await zeroServer();
  let next = 1;
  const as = async (userId: string, name: string, args: unknown) => {
    const [result] = results(
      (await server.push(userId, [{ id: next++, name, args, clientID: `client-${userId}` }], {
        clientGroupID: `group-${userId}`,
      })).body,
    ) as { error?: string; message?: string }[];
    // Each user's client numbers its own mutations.
    return result!.error ? result!.message : "ok";
  };
  const counters = new Map<string, number>();
  const run = (userId: string, name: string, args: unknown) => {
    next = (counters.get(userId) ?? 0) + 1;
    counters.set(userId, next);
    return as(userId, name, args);
  };
  const { db } = server.deps.database;

  // user.insert / user.update: only the caller's own row; immutable columns never change.
  assert.equal(await run("alice", "user.insert", { id: "alice", name: "A", email: "a@x" }), "ok");
  assert.equal(await run("bob", "user.insert", { id: "bob", name: "B", email: "b@x" }), "ok");
  assert.equal(
    await run("bob", "user.insert", { id: "carol", name: "C", email: "c@x" }),
    "forbidden",
  );
  assert.equal(await run("bob", "user.update", { id: "alice", name: "pwned" }), "forbidden");
  assert.equal(
    await run("alice", "user.update", { id: "alice", name: "Alice", createdAt: 1 }),
    "ok",
  );
  const alice = await db.selectFrom("user").selectAll().where("id", "=", "alice")
    .executeTakeFirstOrThrow();
  assert.equal(alice.name, "Alice");
  assert.notEqual(Number(alice.createdAt), 1);

  // file.insertWithFileState: owner = caller, state = caller's, for this file; id format; limit.
  const f1 = zeroFileId("f1");
  assert.equal(await run("alice", "file.insertWithFileState", newFile(f1, "alice")), "ok");
  assert.equal(
    await run("bob", "file.insertWithFileState", newFile(zeroFileId("x"), "alice")),
    "forbidden",
  );
  const wrongState = newFile(zeroFileId("y"), "bob");
  wrongState.fileState.userId = "alice";
  assert.equal(await run("bob", "file.insertWithFileState", wrongState), "forbidden");
  const otherFile = newFile(zeroFileId("z"), "bob");
  otherFile.fileState.fileId = f1;
  assert.equal(await run("bob", "file.insertWithFileState", otherFile), "bad_request");
  assert.equal(
    await run("bob", "file.insertWithFileState", newFile("too-short", "bob")),
    "bad_request",
  );
  // Someone else's existing id: not taken over.
  assert.equal(await run("bob", "file.insertWithFileState", newFile(f1, "bob")), "forbidden");
  for (const label of ["f2", "f3"]) {
    assert.equal(
      await run("alice", "file.insertWithFileState", newFile(zeroFileId(label), "alice")),
      "ok",
    );
  }
  assert.equal(
    await run("alice", "file.insertWithFileState", newFile(zeroFileId("f4"), "alice")),
    "max_files_reached",
  );

  // file.update: the owner only; id, ownerId, createdAt, createSource never change.
  assert.equal(await run("bob", "file.update", { id: f1, name: "mine now" }), "forbidden");
  assert.equal(
    await run("alice", "file.update", {
      id: f1,
      name: "Renamed",
      shared: true,
      sharedLinkType: "view",
      ownerId: "bob",
      createdAt: 1,
      createSource: "f/other",
    }),
    "ok",
  );
  const file = await storedFile(server, f1);
  assert.deepEqual([file?.name, file?.ownerId, file?.shared, file?.createSource], [
    "Renamed",
    "alice",
    true,
    null,
  ]);

  // file_state.insert: own rows only; another's file only when shared.
  assert.equal(await run("bob", "file_state.insert", { userId: "bob", fileId: f1 }), "ok");
  assert.equal(await run("bob", "file_state.insert", { userId: "alice", fileId: f1 }), "forbidden");
  const [privateFile] = await db.selectFrom("file").select("id").where("ownerId", "=", "alice")
    .where("shared", "=", false).execute();
  assert.equal(
    await run("bob", "file_state.insert", { userId: "bob", fileId: privateFile!.id }),
    "forbidden",
  );
  // file_state.update / delete: own rows only.
  assert.equal(
    await run("bob", "file_state.update", { userId: "bob", fileId: f1, isPinned: true }),
    "ok",
  );
  assert.equal(
    await run("bob", "file_state.update", { userId: "alice", fileId: f1, isPinned: true }),
    "forbidden",
  );
  assert.equal(await run("bob", "file_state.delete", { userId: "alice", fileId: f1 }), "forbidden");

  // file.deleteOrForget: a guest forgets (only their state goes); the owner deletes (soft).
  assert.equal(await run("bob", "file.deleteOrForget", { id: f1 }), "ok");
  assert.equal((await storedFile(server, f1))?.isDeleted, false);
  assert.deepEqual(
    (await db.selectFrom("file_state").select("userId").where("fileId", "=", f1).execute())
      .map((row) => row.userId),
    ["alice"],
  );
  assert.equal(await run("alice", "file.deleteOrForget", { id: f1 }), "ok");
  assert.equal((await storedFile(server, f1))?.isDeleted, true);
  assert.deepEqual(
    await db.selectFrom("file_state").select("userId").where("fileId", "=", f1).execute(),
    [],
  );
  // A deleted file takes no more changes.
  assert.equal(await run("alice", "file.update", { id: f1, name: "again" }), "forbidden");
});

Deno.test(`${engine} zero query: the three queries for the caller; 401 without or with a forged token`, async () => {
  await using server = await zeroServer();
  const transform = ["transform", [
    { id: "q1", name: "user", args: [] },
    { id: "q2", name: "files", args: [] },
    { id: "q3", name: "fileStates", args: [] },
  ]];
  const answer = await server.query("alice", transform);
  assert.equal(answer.status, 200);
  assert.equal(answer.body.userID, "alice");
  const body = answer.body as unknown as [string, { id: string; name: string; ast: unknown }[]];
  const asts = JSON.stringify(answer.body);
  assert.ok(asts.includes('"alice"'), asts);
  assert.ok(!asts.includes('"bob"'));
  // Each query came back as an AST of its table.
  const queries = Array.isArray(body) ? body[1] : (answer.body.queries as typeof body[1]);
  assert.deepEqual(
    queries.map((q) => [q.id, (q.ast as { table: string }).table]),
    [["q1", "user"], ["q2", "file"], ["q3", "file_state"]],
  );
  // The files query's subquery keeps to the caller's own file states (its rows sync too).
  const subquery = findSubquery(queries[1]!.ast);
  assert.equal(subquery?.table, "file_state", JSON.stringify(queries[1]!.ast));
  assert.deepEqual(subquery?.where, {
    type: "simple",
    left: { type: "column", name: "userId" },
    right: { type: "literal", value: "alice" },
    op: "=",
  });
  // zero-cache's auth check: an empty transform.
  assert.equal((await server.query("alice", ["transform", []])).status, 200);

  for (const url of [`${server.url}/app/zero/query`, `${server.url}/app/zero/push`]) {
    const anonymous = await postZero(url, null, transform);
    assert.equal(anonymous.status, 401);
    const forged = await postZero(url, "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.", transform);
    assert.equal(forged.status, 401);
  }
  // Nothing was written for them.
  const clients = await sql`SELECT 1 FROM "zero_0"."clients"`.execute(server.deps.database.db);
  assert.equal(clients.rows.length, 0);
});

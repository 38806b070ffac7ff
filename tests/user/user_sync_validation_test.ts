import assert from "node:assert/strict";
import { TEST_ENGINE } from "../helpers/db.ts";
import { type AuthServer, fileRow, startAuthServer } from "../helpers/user_sync_client.ts";

const engine = `[${TEST_ENGINE}]`;

async function sql(server: AuthServer, text: string, params: unknown[] = []) {
  return await server.deps.database.rawTransaction((session) => session.query(text, params));
}

async function fileById(server: AuthServer, id: string) {
  const rows = await sql(server, `SELECT * FROM "file" WHERE "id" = $1`, [id]);
  return rows[0] as Record<string, unknown> | undefined;
}

Deno.test(`${engine} validation: user rows, file creation and changes, file states`, async () => {
  await using server = await startAuthServer();
  await using users = await server.users("alice", "bob");
  const { alice, bob } = users;
  const expect = async (
    client: typeof alice,
    id: string,
    updates: { table: string; event: string; row: Record<string, unknown> }[],
    outcome: string,
  ) => {
    const result = await client.mutate(id, updates);
    assert.equal(result.type === "commit" ? "commit" : result.errorCode, outcome, id);
  };
  // user: only one's own row.
  await expect(
    alice,
    "u1",
    [{ table: "user", event: "update", row: { id: "bob", name: "x" } }],
    "forbidden",
  );
  await expect(
    alice,
    "u2",
    [{ table: "user", event: "update", row: { id: "alice", name: "Al" } }],
    "commit",
  );
  await alice.nextUpdate((u) => u.table === "user" && u.row.name === "Al");
  // file creation: only for oneself.
  await expect(
    alice,
    "f1",
    [{ table: "file", event: "insert", row: fileRow("fb", "bob") }],
    "forbidden",
  );
  await expect(
    alice,
    "f2",
    [{ table: "file", event: "insert", row: fileRow("private", "alice") }],
    "commit",
  );
  await expect(alice, "f3", [{
    table: "file",
    event: "insert",
    row: fileRow("view", "alice", { shared: true, sharedLinkType: "view" }),
  }], "commit");
  await expect(alice, "f4", [{
    table: "file",
    event: "insert",
    row: fileRow("edit", "alice", { shared: true }),
  }], "commit");
  // Someone else's file, even through an upsert, is not writable.
  await expect(
    bob,
    "f5",
    [{ table: "file", event: "insert", row: fileRow("private", "bob") }],
    "forbidden",
  );
  await expect(bob, "f6", [{
    table: "file",
    event: "update",
    row: { id: "private", name: "mine" },
  }], "forbidden");
  await expect(
    bob,
    "f7",
    [{ table: "file", event: "delete", row: { id: "private" } }],
    "forbidden",
  );
  // file_state: own user id only; the file must exist and be owned or shared.
  await expect(bob, "s1", [{
    table: "file_state",
    event: "insert",
    row: { userId: "alice", fileId: "edit" },
  }], "forbidden");
  await expect(bob, "s2", [{
    table: "file_state",
    event: "insert",
    row: { userId: "bob", fileId: "nope" },
  }], "bad_request");
  await expect(bob, "s3", [{
    table: "file_state",
    event: "insert",
    row: { userId: "bob", fileId: "private" },
  }], "forbidden");
  await expect(bob, "s4", [{
    table: "file_state",
    event: "insert",
    row: { userId: "bob", fileId: "edit" },
  }], "commit");
  await expect(bob, "s5", [{
    table: "file_state",
    event: "insert",
    row: { userId: "bob", fileId: "view" },
  }], "commit");
  // A guest of an `edit` file may touch updatedAt only; of a `view` file nothing.
  await expect(
    bob,
    "g1",
    [{ table: "file", event: "update", row: { id: "edit", updatedAt: 123 } }],
    "commit",
  );
  await expect(
    bob,
    "g2",
    [{ table: "file", event: "update", row: { id: "edit", name: "hijack" } }],
    "forbidden",
  );
  await expect(bob, "g3", [{
    table: "file",
    event: "update",
    row: { id: "edit", updatedAt: 5, shared: false },
  }], "forbidden");
  await expect(
    bob,
    "g4",
    [{ table: "file", event: "update", row: { id: "view", updatedAt: 123 } }],
    "forbidden",
  );
  await expect(bob, "g5", [{ table: "file", event: "delete", row: { id: "edit" } }], "forbidden");
  assert.equal((await fileById(server, "edit"))?.updatedAt, 123);
  // A deleted file cannot be changed, even by its owner.
  await expect(alice, "d1", [{
    table: "file",
    event: "update",
    row: { id: "private", isDeleted: true },
  }], "commit");
  await expect(alice, "d2", [{
    table: "file",
    event: "update",
    row: { id: "private", name: "back" },
  }], "forbidden");
  // Malformed rows: unknown columns, wrong types, bad enum values.
  await expect(
    alice,
    "b1",
    [{ table: "file", event: "update", row: { id: "edit", color: "red" } }],
    "bad_request",
  );
  await expect(
    alice,
    "b2",
    [{ table: "file", event: "update", row: { id: "edit", name: 5 } }],
    "bad_request",
  );
  await expect(alice, "b3", [{
    table: "file",
    event: "update",
    row: { id: "edit", sharedLinkType: "own" },
  }], "bad_request");
  await expect(
    alice,
    "b4",
    [{ table: "widget", event: "insert", row: { id: "w" } }],
    "bad_request",
  );
  // A NOT NULL column missing from an insert is a bad request, not an unknown error.
  await expect(alice, "b5", [{
    table: "file",
    event: "insert",
    row: { id: "partial", ownerId: "alice" },
  }], "bad_request");
});

Deno.test(`${engine} mutate: one transaction per mutation; apply rules for insert/update/delete`, async () => {
  await using server = await startAuthServer();
  await using alice = await server.connect("alice");
  await alice.initialData();
  // A failing update rolls back the whole mutation.
  const rejected = await alice.mutate("all-or-nothing", [
    { table: "file", event: "insert", row: fileRow("f1", "alice") },
    { table: "user", event: "update", row: { id: "bob", name: "x" } },
  ]);
  assert.equal(rejected.errorCode, "forbidden");
  assert.equal(await fileById(server, "f1"), undefined);
  const [{ count }] = await sql(
    server,
    `SELECT count(*)::INT AS "count" FROM "user_mutation_number"`,
  ) as [{ count: number }];
  assert.equal(count, 0, "no mutation number for a rejected mutation");

  assert.equal(
    (await alice.mutate("m1", [{
      table: "file",
      event: "insert",
      row: fileRow("f1", "alice", { createdAt: 1 }),
    }])).type,
    "commit",
  );
  // Update: immutable columns (ownerId, createdAt, keys) are ignored; only the rest is written.
  assert.equal(
    (await alice.mutate("m2", [{
      table: "file",
      event: "update",
      row: { id: "f1", name: "New", createdAt: 99, ownerId: "alice" },
    }])).type,
    "commit",
  );
  let file = await fileById(server, "f1");
  assert.equal(file?.name, "New");
  assert.equal(file?.createdAt, 1);
  // An update with no mutable column is a no-op that still commits.
  assert.equal(
    (await alice.mutate("m3", [{ table: "file", event: "update", row: { id: "f1" } }])).type,
    "commit",
  );
  // Insert is an upsert: an existing row gets the new values, but not a new owner or creation time.
  assert.equal(
    (await alice.mutate("m4", [{
      table: "file",
      event: "insert",
      row: fileRow("f1", "alice", { name: "Upserted", createdAt: 7 }),
    }])).type,
    "commit",
  );
  file = await fileById(server, "f1");
  assert.equal(file?.name, "Upserted");
  assert.equal(file?.createdAt, 1);
  // file_state insert with only the key does nothing on conflict.
  assert.equal(
    (await alice.mutate("m5", [{
      table: "file_state",
      event: "insert",
      row: { userId: "alice", fileId: "f1", isPinned: true },
    }])).type,
    "commit",
  );
  assert.equal(
    (await alice.mutate("m6", [{
      table: "file_state",
      event: "insert",
      row: { userId: "alice", fileId: "f1" },
    }])).type,
    "commit",
  );
  const [state] = await sql(server, `SELECT * FROM "file_state" WHERE "userId" = 'alice'`) as [
    Record<string, unknown>,
  ];
  assert.equal(state.isPinned, true);
  // Delete by key.
  assert.equal(
    (await alice.mutate("m7", [{
      table: "file_state",
      event: "delete",
      row: { userId: "alice", fileId: "f1" },
    }])).type,
    "commit",
  );
  assert.equal((await sql(server, `SELECT * FROM "file_state"`)).length, 0);
  await alice.nextUpdate((u) => u.table === "file_state" && u.event === "delete");
  assert.deepEqual(
    alice.updates().find((u) => u.table === "file_state" && u.event === "delete")?.row,
    { userId: "alice", fileId: "f1" },
  );
  const [{ mutationNumber }] = await sql(
    server,
    `SELECT "mutationNumber" FROM "user_mutation_number"`,
  ) as [{ mutationNumber: number }];
  assert.equal(Number(mutationNumber), 7);
});

Deno.test(`${engine} max files: at most the limit of non-deleted files per owner`, async () => {
  await using server = await startAuthServer({ limits: { maxFilesPerUser: 2 } });
  await using alice = await server.connect("alice");
  await alice.initialData();
  assert.equal(
    (await alice.mutate("m1", [{ table: "file", event: "insert", row: fileRow("f1", "alice") }]))
      .type,
    "commit",
  );
  assert.equal(
    (await alice.mutate("m2", [{ table: "file", event: "insert", row: fileRow("f2", "alice") }]))
      .type,
    "commit",
  );
  const third = await alice.mutate("m3", [{
    table: "file",
    event: "insert",
    row: fileRow("f3", "alice"),
  }]);
  assert.deepEqual(third, { type: "reject", mutationId: "m3", errorCode: "max_files_reached" });
  // Two in one mutation count too.
  assert.equal(
    (await alice.mutate("m4", [{
      table: "file",
      event: "update",
      row: { id: "f1", isDeleted: true },
    }])).type,
    "commit",
  );
  const both = await alice.mutate("m5", [
    { table: "file", event: "insert", row: fileRow("f4", "alice") },
    { table: "file", event: "insert", row: fileRow("f5", "alice") },
  ]);
  assert.equal(both.errorCode, "max_files_reached");
  // A deleted file frees its slot.
  assert.equal(
    (await alice.mutate("m6", [{ table: "file", event: "insert", row: fileRow("f4", "alice") }]))
      .type,
    "commit",
  );
});

/** `POST /app/tldr`: files created from `.tldr` snapshots, seeded rooms, every refusal clean. */
import assert from "node:assert/strict";
import { connectRaw, currentSchema, geoShape } from "../helpers/raw_socket.ts";
import { type AuthServer, startAuthServer } from "../helpers/user_sync_client.ts";
import { TEST_ENGINE } from "../helpers/db.ts";
import { createTLSchema } from "@tldraw/tlschema";

const engine = `[${TEST_ENGINE}]`;

function tldr(shapes: Record<string, unknown>[], extra: Record<string, unknown> = {}) {
  return {
    tldrawFileFormatVersion: 1,
    schema: currentSchema,
    records: [
      { id: "document:document", typeName: "document", gridSize: 10, name: "From disk", meta: {} },
      { id: "page:page", typeName: "page", name: "Page 1", index: "a1", meta: {} },
      // Session-scoped records in a file never reach the room.
      { id: "camera:page:page", typeName: "camera", x: 0, y: 0, z: 1, meta: {} },
      ...shapes,
    ],
    ...extra,
  };
}

async function post(server: AuthServer, body: unknown, userId: string | null = "alice") {
  const headers: Record<string, string> = { "Content-Type": "application/json" };
  if (userId) headers.Authorization = `Bearer ${await server.token(userId)}`;
  const response = await fetch(`${server.url}/app/tldr`, {
    method: "POST",
    headers,
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

async function fileCount(server: AuthServer) {
  return (await server.deps.database.db.selectFrom("file").selectAll().execute()).length;
}

Deno.test(`${engine} POST /app/tldr creates files whose rooms hold the snapshot`, async () => {
  await using server = await startAuthServer();
  const { status, body } = await post(server, {
    snapshots: [tldr([geoShape("shape:a"), geoShape("shape:b", { x: 100 })]), {
      ...tldr([]),
      name: "Named upload",
    }],
  });
  assert.equal(status, 201, JSON.stringify(body));
  assert.equal(body.files.length, 2);
  const [first, second] = body.files;
  assert.equal(first.name, "From disk");
  assert.equal(second.name, "Named upload");
  const row = await server.deps.database.db.selectFrom("file").selectAll().where(
    "id",
    "=",
    first.id,
  )
    .executeTakeFirstOrThrow();
  assert.equal(row.ownerId, "alice");
  assert.equal(row.publishedSlug, first.slug);
  assert.equal(row.isEmpty, false);
  assert.equal(row.createSource, "tldr");

  const token = await server.token("alice");
  const { socket, reply } = await connectRaw(`${server.wsUrl}/app/file/${first.id}?token=${token}`);
  assert.equal(reply.hydrationType, "wipe_all");
  assert.deepEqual(Object.keys(reply.diff).filter((id) => id.startsWith("shape:")).sort(), [
    "shape:a",
    "shape:b",
  ]);
  assert.equal(reply.diff["document:document"][1].name, "From disk");
  assert.equal(reply.diff["camera:page:page"], undefined);
  await socket.close();
});

Deno.test(`${engine} POST /app/tldr migrates a snapshot saved by an older tldraw`, async () => {
  await using server = await startAuthServer();
  const schema = createTLSchema();
  const geoVersion = currentSchema.sequences["com.tldraw.shape.geo"]!;
  const older = {
    ...currentSchema,
    sequences: { ...currentSchema.sequences, "com.tldraw.shape.geo": geoVersion - 1 },
  };
  const current = geoShape("shape:old");
  const down = schema.migratePersistedRecord(current as never, older as never, "down");
  assert.equal(down.type, "success");
  const oldShape = (down as unknown as { value: Record<string, unknown> }).value;
  assert.notDeepEqual(oldShape, current);
  const { status, body } = await post(server, { snapshots: [tldr([oldShape], { schema: older })] });
  assert.equal(status, 201, JSON.stringify(body));
  const token = await server.token("alice");
  const { socket, reply } = await connectRaw(
    `${server.wsUrl}/app/file/${body.files[0].id}?token=${token}`,
  );
  assert.deepEqual(reply.diff["shape:old"][1], current);
  await socket.close();
});

Deno.test(`${engine} POST /app/tldr refuses bad uploads and writes nothing`, async () => {
  await using server = await startAuthServer({ limits: { maxFilesPerUser: 2 } });
  assert.equal((await post(server, { snapshots: [tldr([])] }, null)).status, 401);
  assert.equal((await post(server, "{not json")).status, 400);
  assert.equal((await post(server, { snapshots: [] })).status, 400);

  const invalid = await post(server, {
    snapshots: [tldr([]), tldr([geoShape("shape:bad", { x: "not a number" })])],
  });
  assert.equal(invalid.status, 400);
  assert.match(invalid.body.error.message, /snapshot 1: invalid record shape:bad/);

  const tooNew = await post(server, {
    snapshots: [tldr([], {
      schema: {
        ...currentSchema,
        sequences: { ...currentSchema.sequences, "com.tldraw.shape.geo": 999 },
      },
    })],
  });
  assert.equal(tooNew.status, 400);
  assert.equal(tooNew.body.error.details.reason, "schema_too_new");

  const tooMany = await post(server, { snapshots: [tldr([]), tldr([]), tldr([])] });
  assert.equal(tooMany.status, 403);
  assert.equal(tooMany.body.error.details.reason, "max_files_reached");
  assert.equal(await fileCount(server), 0);

  assert.equal((await post(server, { snapshots: [tldr([]), tldr([])] })).status, 201);
  assert.equal(await fileCount(server), 2);
});

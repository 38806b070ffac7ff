/**
 * `POST /app/tldr`: creates files from uploaded `.tldr` snapshots. Body: `{"snapshots": [tldrFile, …]}`
 * (each may carry a `name`). Every snapshot is validated and migrated to the server's schema before
 * anything is written; each room is seeded before its `file` row exists, so a file never appears
 * without its content. Answers `201 {"files": [{id, name, slug}]}`.
 *
 * @module
 */
import type { RecordType, UnknownRecord } from "@tldraw/store";
import { createTLSchema } from "@tldraw/tlschema";
import { Hono } from "hono";
import { z } from "zod";
import { fileRoomId } from "../sync/file_rooms.ts";
import type { RoomManager } from "../sync/tldraw/room_manager.ts";
import { migrateTldrFile, tldrFileSchema } from "../sync/tldraw/tldr_file.ts";
import type { WireRecord } from "../sync/tldraw/protocol.ts";
import { ensureUser } from "../sync/user/data.ts";
import type { AppDeps } from "./deps.ts";
import { HttpError } from "./errors.ts";
import { readJsonBody } from "./body.ts";
import type { UserData } from "./user_sync.ts";

/** At most this many snapshots per request. */
export const MAX_SNAPSHOTS_PER_REQUEST = 20;

const bodySchema = z.object({
  snapshots: z.array(tldrFileSchema.extend({ name: z.string().max(1_000).optional() }))
    .min(1).max(MAX_SNAPSHOTS_PER_REQUEST),
});

const schema = createTLSchema();

/** A URL-safe random id (file ids and published slugs). */
export function randomId(length = 22): string {
  const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  return [...bytes].map((b) => alphabet[b % alphabet.length]).join("");
}

function validate(records: WireRecord[]): string | undefined {
  for (const record of records) {
    const type = schema.types[record.typeName as keyof typeof schema.types] as
      | RecordType<UnknownRecord, never>
      | undefined;
    try {
      type!.validate(record);
    } catch (error) {
      return `${record.id}: ${error instanceof Error ? error.message : String(error)}`;
    }
  }
  return undefined;
}

/** The `.tldr` import route. */
export function tldrImportRoutes(deps: AppDeps, rooms: RoomManager, userData: UserData): Hono {
  const { config, database } = deps;
  const app = new Hono();
  app.post("/app/tldr", async (c) => {
    const identity = await userData.auth.required(c);
    const json = await readJsonBody(c, config.limits.maxRoomBytes * 2);
    const parsed = bodySchema.safeParse(json);
    if (!parsed.success) {
      throw new HttpError("bad_request", "expected {snapshots: [.tldr file, …]}", {
        issues: parsed.error.issues.slice(0, 5).map((i) => `${i.path.join(".")}: ${i.message}`),
      });
    }

    // Everything is checked before anything is written.
    const prepared = parsed.data.snapshots.map((snapshot, index) => {
      const migrated = migrateTldrFile(snapshot);
      if (!migrated.ok) {
        throw new HttpError("bad_request", `snapshot ${index}: ${migrated.message}`, {
          index,
          reason: migrated.error,
        });
      }
      const invalid = validate(migrated.records);
      if (invalid) {
        throw new HttpError("bad_request", `snapshot ${index}: invalid record ${invalid}`, {
          index,
        });
      }
      const size = JSON.stringify(migrated.records).length;
      if (size > config.limits.maxRoomBytes) {
        throw new HttpError("payload_too_large", `snapshot ${index} exceeds the room size limit`, {
          index,
          limit: config.limits.maxRoomBytes,
        });
      }
      const documentName = migrated.records.find((r) => r.id === "document:document")?.name;
      const name = snapshot.name ??
        (typeof documentName === "string" && documentName !== "" ? documentName : "Untitled");
      return { id: randomId(), slug: randomId(), name, records: migrated.records };
    });

    await ensureUser(database.db, identity);
    const { count } = await database.db.selectFrom("file")
      .select((eb) => eb.fn.countAll<number>().as("count"))
      .where("ownerId", "=", identity.userId).where("isDeleted", "=", false)
      .executeTakeFirstOrThrow();
    if (Number(count) + prepared.length > config.limits.maxFilesPerUser) {
      throw new HttpError("forbidden", "max_files_reached", {
        reason: "max_files_reached",
        limit: config.limits.maxFilesPerUser,
      });
    }

    for (const file of prepared) {
      await rooms.withRoom(fileRoomId(file.id), (room) =>
        room.updateDocument((current) => {
          const keep = new Set(file.records.map((r) => r.id));
          return {
            puts: file.records.map((r) =>
              r.id === "document:document" ? { ...r, name: file.name } : r
            ),
            removes: current.map((r) => r.id).filter((id) => !keep.has(id)),
          };
        }));
      const now = Date.now();
      await database.db.insertInto("file").values({
        id: file.id,
        name: file.name,
        ownerId: identity.userId,
        publishedSlug: file.slug,
        createdAt: now,
        updatedAt: now,
        isEmpty: !file.records.some((r) => r.typeName === "shape"),
        createSource: "tldr",
      }).execute();
    }
    return c.json({ files: prepared.map(({ id, name, slug }) => ({ id, name, slug })) }, 201);
  });
  return app;
}

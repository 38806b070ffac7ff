/**
 * Snapshots and published copies:
 * `POST /snapshots` stores a copy of a room (`{"roomId": "<an /r/ room>"}`) or of a posted document
 * (`{"snapshot": {"schema": …, "records": […]}}`, migrated like a `.tldr` file) under a new slug;
 * `GET /snapshot/:slug` returns it; `/v/:slug` and `/ro/:slug` join it read-only (see rooms.ts).
 * `GET /app/published/:slug` serves a published file's copy; `POST`/`DELETE /app/file/:fileId/publish`
 * publish and unpublish over REST (the user-data channel does the same through its mutation hook).
 *
 * @module
 */
import { Hono } from "hono";
import { z } from "zod";
import type { DocumentSnapshot } from "../sync/content/document.ts";
import { replaceDocument, serverSchema } from "../sync/content/document.ts";
import { readRoomDocument } from "../sync/content/document.ts";
import type { Content } from "../sync/content/setup.ts";
import { PublishFailure, snapshotRoomId } from "../sync/content/snapshots.ts";
import type { RoomManager } from "../sync/tldraw/room_manager.ts";
import { migrateTldrFile } from "../sync/tldraw/tldr_file.ts";
import type { AppDeps } from "./deps.ts";
import { callerKey } from "./caller.ts";
import { HttpError } from "./errors.ts";
import { readJsonBody } from "./body.ts";
import { FILE_ID_PATTERN } from "./file_param.ts";
import { ROOM_ID_PATTERN } from "./rooms.ts";
import type { UserData } from "./user_sync.ts";
import type { ReadonlyIds } from "../sync/readonly_ids.ts";

const bodySchema = z.union([
  z.object({ roomId: z.string().regex(ROOM_ID_PATTERN) }),
  z.object({
    snapshot: z.object({
      schema: z.looseObject({ schemaVersion: z.number().int() }),
      records: z.array(z.looseObject({ id: z.string().min(1).max(512), typeName: z.string() }))
        .max(200_000),
    }),
  }),
]);

/**
 * Resolves a read-only join of `slug`: when a snapshot exists under it, seeds (once) the room that
 * serves it and returns that room's id; otherwise `null` (the slug is an ordinary room id).
 */
export function snapshotJoiner(
  rooms: RoomManager,
  content: Content,
): (slug: string) => Promise<string | null> {
  return async (slug) => {
    if (!await content.snapshots.exists(slug)) return null;
    const roomId = snapshotRoomId(slug);
    // Seeded before (the seed commit moved the clock): sessions only read it.
    if (await content.store.readClock(roomId) > 0) return roomId;
    const snapshot = await content.snapshots.get(slug);
    if (!snapshot) return null;
    await rooms.withRoom(
      roomId,
      (room) => room.updateDocument((current) => replaceDocument(current, snapshot.records)),
    );
    return roomId;
  };
}

/** Snapshot and publishing routes. */
export function snapshotRoutes(
  deps: AppDeps,
  userData: UserData,
  content: Content,
  readonlyIds: ReadonlyIds,
): Hono {
  const { config, database } = deps;
  const app = new Hono();

  app.post("/snapshots", async (c) => {
    const identity = await userData.auth.optional(c);
    if (await content.limits.snapshot.isLimited(callerKey(c, identity))) {
      throw new HttpError("rate_limited", "too many snapshots");
    }
    const json = await readJsonBody(c, config.limits.maxRoomBytes * 2);
    const parsed = bodySchema.safeParse(json);
    if (!parsed.success) {
      throw new HttpError(
        "bad_request",
        'expected {"roomId": …} or {"snapshot": {schema, records}}',
      );
    }
    let snapshot: DocumentSnapshot;
    let source: string | undefined;
    if ("roomId" in parsed.data) {
      // A read-only page shares a copy of the room its read-only id opens.
      source = await readonlyIds.roomOf(parsed.data.roomId) ?? parsed.data.roomId;
      const current = await readRoomDocument(content.store, source);
      if (!current) throw new HttpError("not_found", "No such room");
      snapshot = current;
    } else {
      const migrated = migrateTldrFile({ tldrawFileFormatVersion: 1, ...parsed.data.snapshot });
      if (!migrated.ok) {
        throw new HttpError("bad_request", migrated.message, { reason: migrated.error });
      }
      snapshot = { clock: 0, schema: serverSchema(), records: migrated.records };
    }
    if (JSON.stringify(snapshot.records).length > config.limits.maxRoomBytes) {
      throw new HttpError("payload_too_large", "the snapshot exceeds the room size limit");
    }
    const slug = await content.snapshots.create(snapshot, {
      ...(source ? { roomId: source } : {}),
      ...(identity ? { userId: identity.userId } : {}),
    });
    // `roomId` as the original backend answers; `slug` is the same value.
    return c.json({ error: false, slug, roomId: slug }, 201);
  });

  app.get("/snapshot/:slug", async (c) => {
    const snapshot = await content.snapshots.get(c.req.param("slug"));
    if (!snapshot) throw new HttpError("not_found", "No such snapshot");
    // Snapshots are immutable.
    c.header("Cache-Control", "public, max-age=31536000, immutable");
    return c.json({ error: false, schema: snapshot.schema, records: snapshot.records });
  });

  app.get("/app/published/:slug", async (c) => {
    const published = await content.publisher.get(c.req.param("slug"));
    if (!published) throw new HttpError("not_found", "Nothing is published under this slug");
    const etag = `"p${published.publishedAt}"`;
    c.header("ETag", etag);
    // Republishing changes it: always revalidate (cheap with the ETag).
    c.header("Cache-Control", "public, max-age=0, must-revalidate");
    if (c.req.header("if-none-match") === etag) return c.body(null, 304);
    return c.json({
      schema: published.schema,
      records: published.records,
      publishedAt: published.publishedAt,
    });
  });

  const setPublished = async (fileId: string, userId: string, published: boolean) => {
    if (!FILE_ID_PATTERN.test(fileId)) throw new HttpError("not_found", "No such file");
    try {
      await database.db.transaction().execute(async (trx) => {
        const file = await trx.selectFrom("file").select(["ownerId", "isDeleted"])
          .where("id", "=", fileId).forUpdate().executeTakeFirst();
        if (!file || file.isDeleted) throw new HttpError("not_found", "No such file");
        if (file.ownerId !== userId) throw new HttpError("forbidden", "Only the owner publishes");
        const now = Date.now();
        await trx.updateTable("file")
          .set(
            published ? { published, lastPublished: now, updatedAt: now } : {
              published,
              updatedAt: now,
            },
          )
          .where("id", "=", fileId).execute();
        if (published) await content.publisher.publish(fileId, trx);
        else await content.publisher.unpublish(fileId, trx);
      });
    } catch (error) {
      if (error instanceof HttpError) throw error;
      const reason = published ? "publish_failed" : "unpublish_failed";
      deps.log.warn(reason, { fileId, error });
      throw new HttpError(
        "internal_error",
        `The file could not be ${published ? "" : "un"}published`,
        {
          reason,
          ...(error instanceof PublishFailure ? { cause: error.reason } : {}),
        },
      );
    }
  };

  app.post("/app/file/:fileId/publish", async (c) => {
    const identity = await userData.auth.required(c);
    await setPublished(c.req.param("fileId"), identity.userId, true);
    const file = await database.db.selectFrom("file").select(["publishedSlug", "lastPublished"])
      .where("id", "=", c.req.param("fileId")).executeTakeFirstOrThrow();
    return c.json({ published: true, slug: file.publishedSlug, lastPublished: file.lastPublished });
  });

  app.delete("/app/file/:fileId/publish", async (c) => {
    const identity = await userData.auth.required(c);
    await setPublished(c.req.param("fileId"), identity.userId, false);
    return c.json({ published: false });
  });

  return app;
}

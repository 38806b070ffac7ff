/**
 * Creating and restoring files over HTTP, with the rules of the user-data channel (the same row
 * updates go through the same validation and hooks):
 *
 * - `POST /app/files` `{name?, createSource?}` → `201 {file}`: a new file, empty or a copy of
 *   `createSource` (`f/<fileId>`, `p/<slug>`, `s/<slug>`, `r/<roomId>`), refused with 403 when the
 *   caller may not read the source and 400 when it does not exist.
 * - `POST /app/file/:fileId/restore` → `{file}`: the owner takes a deleted file back within the
 *   recovery window (`FILE_RECOVERY_DAYS`).
 * - `GET /app/files/deleted` → `{files: [{…file, deletedAt, purgeAt}]}`: the caller's deleted
 *   files that can still be restored.
 *
 * @module
 */
import { Hono } from "hono";
import { z } from "zod";
import { MutationError, type MutationErrorCode } from "../sync/user/protocol.ts";
import { ensureUser } from "../sync/user/data.ts";
import type { AppDeps } from "./deps.ts";
import { HttpError, type HttpErrorCode } from "./errors.ts";
import { FILE_ID_PATTERN } from "./file_param.ts";
import { readJsonBody } from "./body.ts";
import { randomId } from "./tldr_import.ts";
import type { UserData } from "./user_sync.ts";

const createSchema = z.strictObject({
  name: z.string().max(1_000).optional(),
  createSource: z.string().max(200).optional(),
});

/** How a refused row update answers over HTTP. */
const MUTATION_STATUS: Record<MutationErrorCode, HttpErrorCode> = {
  forbidden: "forbidden",
  bad_request: "bad_request",
  max_files_reached: "forbidden",
  rate_limit_exceeded: "rate_limited",
  publish_failed: "internal_error",
  unpublish_failed: "internal_error",
  unknown_error: "internal_error",
};

function asHttpError(error: unknown): unknown {
  if (!(error instanceof MutationError)) return error;
  const code = MUTATION_STATUS[error.code];
  // Internal errors keep their details in the log, not in the answer.
  const message = code === "internal_error" ? "the change could not be made" : error.message;
  return new HttpError(code, message, { reason: error.code });
}

/** The file routes. */
export function fileRoutes(deps: AppDeps, userData: UserData): Hono {
  const { database, config } = deps;
  const app = new Hono();

  app.post("/app/files", async (c) => {
    const identity = await userData.auth.required(c);
    const parsed = createSchema.safeParse(await readJsonBody(c, 16 * 1024));
    if (!parsed.success) {
      throw new HttpError("bad_request", 'expected {"name"?: string, "createSource"?: string}');
    }
    const { name = "Untitled", createSource } = parsed.data;
    const now = Date.now();
    const id = randomId();
    await ensureUser(database.db, identity);
    try {
      await userData.service.writeRows(identity.userId, [
        {
          table: "file",
          event: "insert",
          row: {
            id,
            name,
            ownerId: identity.userId,
            publishedSlug: randomId(),
            createdAt: now,
            updatedAt: now,
            createSource: createSource ?? null,
          },
        },
        {
          table: "file_state",
          event: "insert",
          row: { userId: identity.userId, fileId: id, isFileOwner: true, firstVisitAt: now },
        },
      ]);
    } catch (error) {
      throw asHttpError(error);
    }
    const file = await database.db.selectFrom("file").selectAll().where("id", "=", id)
      .executeTakeFirstOrThrow();
    return c.json({ file }, 201);
  });

  app.post("/app/file/:fileId/restore", async (c) => {
    const identity = await userData.auth.required(c);
    const fileId = c.req.param("fileId");
    if (!FILE_ID_PATTERN.test(fileId)) throw new HttpError("not_found", "No such file");
    const existing = await database.db.selectFrom("file").select(["ownerId", "isDeleted"])
      .where("id", "=", fileId).executeTakeFirst();
    if (!existing || existing.ownerId !== identity.userId) {
      throw new HttpError("not_found", "No such file");
    }
    if (existing.isDeleted) {
      try {
        await userData.service.writeRows(identity.userId, [{
          table: "file",
          event: "update",
          row: { id: fileId, isDeleted: false, updatedAt: Date.now() },
        }]);
      } catch (error) {
        throw asHttpError(error);
      }
    }
    const file = await database.db.selectFrom("file").selectAll().where("id", "=", fileId)
      .executeTakeFirstOrThrow();
    return c.json({ file });
  });

  app.get("/app/files/deleted", async (c) => {
    const identity = await userData.auth.required(c);
    const recoveryMs = config.content.fileRecoveryMs;
    const rows = await database.db.selectFrom("file")
      .innerJoin("file_deletion", "file_deletion.fileId", "file.id")
      .selectAll("file")
      .select("file_deletion.requestedAt")
      .where("file.ownerId", "=", identity.userId)
      .where("file.isDeleted", "=", true)
      .where("file_deletion.requestedAt", ">", Date.now() - recoveryMs)
      .orderBy("file_deletion.requestedAt", "desc")
      .execute();
    c.header("Cache-Control", "no-store");
    return c.json({
      files: rows.map(({ requestedAt, ...file }) => ({
        ...file,
        deletedAt: Number(requestedAt),
        purgeAt: Number(requestedAt) + recoveryMs,
      })),
    });
  });

  return app;
}

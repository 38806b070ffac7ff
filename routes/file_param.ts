/**
 * A route's `:fileId`: the pattern of file ids, and the owner check of routes only a file's owner
 * may use (history, the read-only link): 401 without a valid token, 404 for a missing or deleted
 * file, 403 for another's file.
 *
 * @module
 */
import type { Context } from "hono";
import type { Database } from "../db/database.ts";
import type { Authenticator } from "./auth/authenticator.ts";
import { HttpError } from "./errors.ts";

/** File ids as the app creates them: URL-safe, 1–128 characters. */
export const FILE_ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;

/** The id of the caller's own file `:fileId`; `action` completes "Only the owner …". */
export async function ownedFileId(
  c: Context,
  database: Database,
  auth: Authenticator,
  action: string,
): Promise<string> {
  const identity = await auth.required(c);
  const fileId = c.req.param("fileId") ?? "";
  if (!FILE_ID_PATTERN.test(fileId)) throw new HttpError("not_found", "No such file");
  const file = await database.db.selectFrom("file").select(["ownerId", "isDeleted"])
    .where("id", "=", fileId).executeTakeFirst();
  if (!file || file.isDeleted) throw new HttpError("not_found", "No such file");
  if (file.ownerId !== identity.userId) {
    throw new HttpError("forbidden", `Only the owner ${action}`);
  }
  return fileId;
}

/**
 * The arguments of the Zero mutators (tldraw's names and shapes), validated with zod on the client
 * and again on the server: wrong shapes are refused before any rule runs. Rows reuse the user-data
 * channel's row schemas (sync/user/protocol.ts).
 *
 * @module
 */
import { z } from "zod";
import { fileRow, fileStateRow, userRow } from "../user/protocol.ts";

/** New files' ids: what tldraw's client makes (16–32 URL-safe characters). */
export const ZERO_FILE_ID = /^[A-Za-z0-9_-]{16,32}$/;

/** A whole user row (`user.insert`). */
export const userInsertArgs = userRow;
/** The key plus the changed columns (`user.update`). */
export const userUpdateArgs = userRow;

/** `file.insertWithFileState`: the new file and the creator's file state. */
export const fileInsertArgs = z.strictObject({
  file: fileRow.extend({
    id: z.string().regex(ZERO_FILE_ID),
    name: z.string().max(100_000),
    ownerId: z.string().min(1).max(200),
  }),
  fileState: fileStateRow,
});
/** `file.update`: the key plus the changed columns. */
export const fileUpdateArgs = fileRow;
/** `file.deleteOrForget`. */
export const fileDeleteArgs = z.strictObject({ id: z.string().min(1).max(200) });

/** `file_state.insert`. */
export const fileStateInsertArgs = fileStateRow;
/** `file_state.update`: the keys plus the changed columns. */
export const fileStateUpdateArgs = fileStateRow;
/** `file_state.delete`. */
export const fileStateDeleteArgs = z.strictObject({
  fileId: z.string().min(1).max(200),
  userId: z.string().min(1).max(200),
});

/**
 * The synced queries (no arguments), the caller taken from the context the server sets from the
 * verified JWT:
 *
 * | name | rows |
 * |---|---|
 * | `user` | the caller's `user` row |
 * | `files` | files the caller owns or holds a `file_state` for, not deleted |
 * | `fileStates` | the caller's `file_state` rows |
 *
 * @module
 */
import { defineQueriesWithType, defineQueryWithType } from "@rocicorp/zero";
import { type ZeroContext, type ZeroSchema, zql } from "./schema.ts";

const defineQuery = defineQueryWithType<ZeroSchema, ZeroContext>();
const defineQueries = defineQueriesWithType<ZeroSchema>();

/** The queries a Zero client may sync. */
export const queries = defineQueries({
  user: defineQuery(({ ctx }) => zql.user.where("id", ctx.userID).one()),
  files: defineQuery(({ ctx }) =>
    zql.file
      .where("isDeleted", false)
      .where(({ or, cmp, exists }) =>
        or(
          cmp("ownerId", ctx.userID),
          // Rows matched in a subquery are synced too: only the caller's own file states.
          exists("fileStates", (states) => states.where("userId", ctx.userID)),
        )
      )
  ),
  fileStates: defineQuery(({ ctx }) => zql.file_state.where("userId", ctx.userID)),
});

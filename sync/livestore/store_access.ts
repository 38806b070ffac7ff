/**
 * The default per-store access rule for our users:
 * - `user:<userId>` and `user:<userId>:<name>`: that user's private stores;
 * - `file:<fileId>`: follows the `file` row: the owner reads and writes; others read a shared file and
 *   write it when its link is `edit`; nobody syncs a deleted file.
 * Anything else is refused.
 *
 * @module
 */
import type { Database } from "../../db/database.ts";
import type { StoreAccessMode, StoreAccessRule } from "./hooks.ts";

/** Store id prefixes the rule understands. */
export const STORE_KINDS = { user: "user:", file: "file:" } as const;

/**
 * Whether `storeId` belongs to a user (a `user:` or `file:` store): such stores always need a JWT
 * and this rule, whatever the server allows other stores.
 */
export function isUserStore(storeId: string): boolean {
  return storeId.startsWith(STORE_KINDS.user) || storeId.startsWith(STORE_KINDS.file);
}

/** The rule, reading file permissions from `database`. */
export function defaultStoreAccess(database: Database): StoreAccessRule {
  return async (userId: string, storeId: string, mode: StoreAccessMode): Promise<boolean> => {
    if (storeId.startsWith(STORE_KINDS.user)) {
      const rest = storeId.slice(STORE_KINDS.user.length);
      return rest === userId || rest.startsWith(`${userId}:`);
    }
    if (storeId.startsWith(STORE_KINDS.file)) {
      const file = await database.db.selectFrom("file")
        .select(["ownerId", "shared", "sharedLinkType", "isDeleted"])
        .where("id", "=", storeId.slice(STORE_KINDS.file.length))
        .executeTakeFirst();
      if (!file || file.isDeleted) return false;
      if (file.ownerId === userId) return true;
      if (!file.shared) return false;
      return mode === "read" || file.sharedLinkType === "edit";
    }
    return false;
  };
}

/**
 * The mutators as the server runs them, for `POST /app/zero/push`: each turns its arguments into
 * the row updates of the user-data channel and applies them with the same rules, limits and hooks
 * (sync/user/mutations.ts `applyRowUpdates`), inside the transaction Zero's push processor opened
 * (which also records the client's mutation id). A refused mutation throws an `ApplicationError`
 * whose message is the rule's code (`forbidden`, `bad_request`, `max_files_reached`, …); its writes
 * roll back.
 *
 * @module
 */
import { ApplicationError, defineMutatorsWithType, defineMutatorWithType } from "@rocicorp/zero";
import type { Transaction } from "kysely";
import type { DB } from "../../db/schema.ts";
import { type ApplyMutationOptions, applyRowUpdates, isDataError } from "../user/mutations.ts";
import { MutationError, type RowUpdate } from "../user/protocol.ts";
import {
  fileDeleteArgs,
  fileInsertArgs,
  fileStateDeleteArgs,
  fileStateInsertArgs,
  fileStateUpdateArgs,
  fileUpdateArgs,
  userInsertArgs,
  userUpdateArgs,
} from "./args.ts";
import { mutators } from "./mutators.ts";
import type { ZeroContext, ZeroSchema } from "./schema.ts";

type Trx = Transaction<DB>;

const defineServerMutator = defineMutatorWithType<ZeroSchema, ZeroContext, Trx>();
const defineMutators = defineMutatorsWithType<ZeroSchema>();

/** The rule code of a refusal, as the mutation's app error. */
function asApplicationError(error: unknown): unknown {
  if (error instanceof MutationError) {
    return new ApplicationError(error.code, { details: { message: error.message } });
  }
  // A value the database refuses (e.g. NUL in a text) is the client's bad row.
  if (isDataError(error)) {
    return new ApplicationError("bad_request", {
      details: { message: error instanceof Error ? error.message : String(error) },
    });
  }
  return error;
}

/**
 * The server's mutators. `rules` are the user-data service's (`UserSyncService.ruleOptions`), so
 * publishing, copies and the file limit behave the same whichever transport made the change.
 */
export function serverMutators(rules: ApplyMutationOptions) {
  const apply =
    <A>(toUpdates: (args: A, userId: string, trx: Trx) => Promise<RowUpdate[]>) =>
    async (
      { tx, args, ctx }: {
        tx: { location: string; dbTransaction?: { wrappedTransaction: Trx } };
        args: A;
        ctx: ZeroContext;
      },
    ): Promise<void> => {
      if (tx.location !== "server" || !tx.dbTransaction) {
        throw new Error("server mutators run on the server only");
      }
      const trx = tx.dbTransaction.wrappedTransaction;
      try {
        await applyRowUpdates(trx, ctx.userID, await toUpdates(args, ctx.userID, trx), rules);
      } catch (error) {
        throw asApplicationError(error);
      }
    };
  const rows = (...updates: RowUpdate[]) => Promise.resolve(updates);

  return defineMutators(mutators, {
    user: {
      insert: defineServerMutator(
        userInsertArgs,
        apply((row) => {
          // Columns without a database default, when the client left them out.
          const now = Date.now();
          const full = { name: "", email: "", createdAt: now, updatedAt: now, ...row };
          return rows({ table: "user", event: "insert", row: full });
        }),
      ),
      update: defineServerMutator(
        userUpdateArgs,
        apply((row) => rows({ table: "user", event: "update", row })),
      ),
    },
    file: {
      insertWithFileState: defineServerMutator(
        fileInsertArgs,
        apply(({ file, fileState }) => {
          if (fileState.fileId !== file.id) {
            throw new MutationError("bad_request", "fileState.fileId must be file.id");
          }
          return rows(
            { table: "file", event: "insert", row: file },
            { table: "file_state", event: "insert", row: fileState },
          );
        }),
      ),
      update: defineServerMutator(
        fileUpdateArgs,
        apply((row) => rows({ table: "file", event: "update", row })),
      ),
      deleteOrForget: defineServerMutator(
        fileDeleteArgs,
        apply(async ({ id }, userId, trx) => {
          const file = await trx.selectFrom("file").select("ownerId").where("id", "=", id)
            .executeTakeFirst();
          if (!file) throw new MutationError("bad_request", "no such file");
          const forget: RowUpdate = {
            table: "file_state",
            event: "delete",
            row: { fileId: id, userId },
          };
          // The owner deletes (a soft delete: recoverable, then hard-deleted); others forget.
          return file.ownerId === userId
            ? [
              {
                table: "file",
                event: "update",
                row: { id, isDeleted: true, updatedAt: Date.now() },
              },
              forget,
            ]
            : [forget];
        }),
      ),
    },
    file_state: {
      insert: defineServerMutator(
        fileStateInsertArgs,
        apply((row) => rows({ table: "file_state", event: "insert", row })),
      ),
      update: defineServerMutator(
        fileStateUpdateArgs,
        apply((row) => rows({ table: "file_state", event: "update", row })),
      ),
      delete: defineServerMutator(
        fileStateDeleteArgs,
        apply((row) => rows({ table: "file_state", event: "delete", row })),
      ),
    },
  });
}

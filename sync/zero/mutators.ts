/**
 * The Zero mutators, with tldraw's names and arguments, as a client runs them: optimistically, on
 * its local copy. The server runs its own versions of the same names (server_mutators.ts), which
 * apply the user-data channel's rules in Postgres; what the client guessed is then replaced by what
 * the server committed.
 *
 * | name | argument |
 * |---|---|
 * | `user.insert`, `user.update` | a user row (`update`: the key and the changed columns) |
 * | `file.insertWithFileState` | `{file, fileState}` |
 * | `file.update` | `{id, …changed}` |
 * | `file.deleteOrForget` | `{id}`: the owner deletes the file, anyone else forgets it |
 * | `file_state.insert`, `.update`, `.delete` | a file-state row (`delete`: its keys) |
 *
 * @module
 */
import { defineMutatorsWithType, defineMutatorWithType } from "@rocicorp/zero";
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
import { type ZeroContext, type ZeroSchema, zql } from "./schema.ts";

const defineMutator = defineMutatorWithType<ZeroSchema, ZeroContext>();
const defineMutators = defineMutatorsWithType<ZeroSchema>();

/** Column defaults of a new file, as the database would fill them (for the optimistic row). */
function newFile(file: Record<string, unknown>) {
  return {
    thumbnail: "",
    shared: false,
    sharedLinkType: "edit",
    published: false,
    lastPublished: 0,
    isEmpty: true,
    isDeleted: false,
    createSource: null,
    ...file,
  } as never;
}

/** Column defaults of a new user row. */
function newUser(user: Record<string, unknown>) {
  const now = Date.now();
  return {
    name: "",
    email: "",
    avatar: "",
    color: "",
    exportFormat: "png",
    exportTheme: "light",
    exportBackground: true,
    exportPadding: true,
    createdAt: now,
    updatedAt: now,
    flags: "",
    ...user,
  } as never;
}

/** The mutators a Zero client registers (`new Zero({mutators, …})`). */
export const mutators = defineMutators({
  user: {
    insert: defineMutator(userInsertArgs, async ({ tx, args }) => {
      await tx.mutate.user.insert(newUser(args));
    }),
    update: defineMutator(userUpdateArgs, async ({ tx, args }) => {
      await tx.mutate.user.update(args as never);
    }),
  },
  file: {
    insertWithFileState: defineMutator(fileInsertArgs, async ({ tx, args }) => {
      await tx.mutate.file.insert(newFile(args.file));
      await tx.mutate.file_state.insert(args.fileState as never);
    }),
    update: defineMutator(fileUpdateArgs, async ({ tx, args }) => {
      await tx.mutate.file.update(args as never);
    }),
    deleteOrForget: defineMutator(fileDeleteArgs, async ({ tx, args, ctx }) => {
      const file = await tx.run(zql.file.where("id", args.id).one());
      if (file?.ownerId === ctx.userID) {
        await tx.mutate.file.update({ id: args.id, isDeleted: true, updatedAt: Date.now() });
      }
      await tx.mutate.file_state.delete({ fileId: args.id, userId: ctx.userID });
    }),
  },
  file_state: {
    insert: defineMutator(fileStateInsertArgs, async ({ tx, args }) => {
      await tx.mutate.file_state.insert(args as never);
    }),
    update: defineMutator(fileStateUpdateArgs, async ({ tx, args }) => {
      await tx.mutate.file_state.update(args as never);
    }),
    delete: defineMutator(fileStateDeleteArgs, async ({ tx, args }) => {
      await tx.mutate.file_state.delete(args);
    }),
  },
});

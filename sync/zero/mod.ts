/**
 * What a Zero client imports to sync this server's users, files and file states: the schema, the
 * mutators and the queries the server runs (`import {schema, mutators, queries} from
 * "<this package>/zero"`), so client and server never disagree on a name or a shape.
 *
 * ```ts
 * const zero = new Zero({cacheURL, userID, auth: token, schema, mutators, context: {userID}});
 * const files = zero.materialize(queries.files());
 * await zero.mutate(mutators.file.insertWithFileState({file, fileState})).server;
 * ```
 *
 * @module
 */
export { schema, type ZeroContext, type ZeroSchema, zql } from "./schema.ts";
export { mutators } from "./mutators.ts";
export { queries } from "./queries.ts";
export { ZERO_FILE_ID } from "./args.ts";

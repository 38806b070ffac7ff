/**
 * `.tldr` files (what the tldraw editor saves and the app uploads): parsing and migration to the
 * server's schema with `@tldraw/store`. The records' validation happens when they are committed to the
 * room (the same path as client pushes).
 *
 * @module
 */
import type { SerializedSchema, StoreSchema, UnknownRecord } from "@tldraw/store";
import { createTLSchema } from "@tldraw/tlschema";
import { z } from "zod";
import type { WireRecord } from "./protocol.ts";

/** The `.tldr` file shape (tldraw `TldrawFile`). */
export const tldrFileSchema = z.object({
  tldrawFileFormatVersion: z.number().int().min(1),
  schema: z.looseObject({ schemaVersion: z.number().int() }),
  records: z.array(z.looseObject({ id: z.string().min(1).max(512), typeName: z.string().min(1) }))
    .max(200_000),
});

/** A parsed `.tldr` file. */
export type TldrFile = z.infer<typeof tldrFileSchema>;

/** Why a `.tldr` file cannot be imported. */
export const TldrImportError = {
  invalid_file: "invalid_file",
  schema_too_new: "schema_too_new",
  migration_failed: "migration_failed",
} as const;
/** One of {@link TldrImportError}. */
export type TldrImportError = (typeof TldrImportError)[keyof typeof TldrImportError];

/** The result of {@link migrateTldrFile}. */
export type TldrMigration =
  | { ok: true; records: WireRecord[] }
  | { ok: false; error: TldrImportError; message: string };

let defaultSchema: StoreSchema<UnknownRecord, unknown> | undefined;

/**
 * Migrates a `.tldr` file's records to `schema` (default: tldraw's) and keeps the document-scoped ones
 * (a file may carry session records such as cameras, which never reach a room).
 */
export function migrateTldrFile(
  file: TldrFile,
  schema: StoreSchema<UnknownRecord, unknown> = defaultSchema ??=
    createTLSchema() as unknown as StoreSchema<UnknownRecord, unknown>,
): TldrMigration {
  const fileSchema = file.schema as unknown as SerializedSchema;
  // Checked first: `migrateStoreSnapshot` reports every failure the same way (and logs it).
  if (!schema.getMigrationsSince(fileSchema).ok) {
    const ours = schema.serialize();
    const theirs = (fileSchema as { sequences?: Record<string, number> }).sequences ?? {};
    const newer = fileSchema.schemaVersion > ours.schemaVersion ||
      Object.entries(theirs).some(([id, version]) =>
        id in ours.sequences && version > ours.sequences[id]!
      );
    return newer
      ? {
        ok: false,
        error: TldrImportError.schema_too_new,
        message: "the file was saved by a newer tldraw than this server runs",
      }
      : {
        ok: false,
        error: TldrImportError.migration_failed,
        message: "the file's schema cannot be migrated",
      };
  }
  const store: Record<string, UnknownRecord> = {};
  for (const record of file.records) store[record.id] = record as unknown as UnknownRecord;
  let result;
  try {
    result = schema.migrateStoreSnapshot({ store, schema: fileSchema });
  } catch (error) {
    return {
      ok: false,
      error: TldrImportError.migration_failed,
      message: error instanceof Error ? error.message : String(error),
    };
  }
  if (result.type === "error") {
    return {
      ok: false,
      error: TldrImportError.migration_failed,
      message: `the file's records cannot be migrated (${result.reason})`,
    };
  }
  const documentTypes = new Set(
    Object.values(schema.types).filter((type) => type.scope === "document").map((t) => t.typeName),
  );
  const records = Object.values(result.value).filter((record) =>
    documentTypes.has(record.typeName)
  );
  return { ok: true, records: records as unknown as WireRecord[] };
}

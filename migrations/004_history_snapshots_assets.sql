-- Room history, shared snapshots, published copies and the background hard delete (issue 6).
-- Document data is stored gzip-compressed JSON ({schema, records}) in BYTEA columns.

-- Versions of a room's document: written at most every few seconds while it changes, when its last
-- session leaves and after a restore. Thinned by the retention pass (sync/content/history.ts).
CREATE TABLE "room_history" (
  "id" BIGSERIAL PRIMARY KEY,
  "roomId" TEXT NOT NULL,
  "clock" BIGINT NOT NULL,
  "createdAt" BIGINT NOT NULL,
  "reason" TEXT NOT NULL CHECK ("reason" IN ('interval', 'last_leave', 'restore', 'manual')),
  "size" INTEGER NOT NULL,
  "data" BYTEA NOT NULL
);
CREATE INDEX "room_history_room_idx" ON "room_history" ("roomId", "createdAt" DESC);

-- "Share a copy": an immutable snapshot under a random slug.
CREATE TABLE "room_snapshot" (
  "slug" TEXT PRIMARY KEY,
  "sourceRoomId" TEXT,
  "userId" TEXT,
  "createdAt" BIGINT NOT NULL,
  "size" INTEGER NOT NULL,
  "data" BYTEA NOT NULL
);

-- The published copy of a file, served under the file's publishedSlug. Goes with the file row.
CREATE TABLE "published_file" (
  "fileId" TEXT PRIMARY KEY REFERENCES "file" ("id") ON DELETE CASCADE,
  "slug" TEXT NOT NULL UNIQUE,
  "publishedAt" BIGINT NOT NULL,
  "size" INTEGER NOT NULL,
  "data" BYTEA NOT NULL
);

-- Files waiting for their hard delete. Filled by triggers so that every way of deleting a file (the
-- user-data channel, routes, plain SQL) is covered, and durable so the work survives restarts.
CREATE TABLE "file_deletion" (
  "fileId" TEXT PRIMARY KEY,
  "requestedAt" BIGINT NOT NULL,
  "attempts" INTEGER NOT NULL DEFAULT 0,
  "lastError" TEXT
);

-- Blob objects whose asset row is gone (file hard-deleted, cascade, plain SQL): their bytes are removed
-- by the same background worker.
CREATE TABLE "asset_orphan" (
  "objectName" TEXT PRIMARY KEY,
  "orphanedAt" BIGINT NOT NULL
);

CREATE FUNCTION "file_deletion_enqueue"() RETURNS TRIGGER AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    INSERT INTO "file_deletion" ("fileId", "requestedAt")
      VALUES (OLD."id", (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT)
      ON CONFLICT ("fileId") DO NOTHING;
    RETURN OLD;
  END IF;
  IF NEW."isDeleted" AND (TG_OP = 'INSERT' OR NOT OLD."isDeleted") THEN
    INSERT INTO "file_deletion" ("fileId", "requestedAt")
      VALUES (NEW."id", (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT)
      ON CONFLICT ("fileId") DO NOTHING;
  END IF;
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER "file_deletion_enqueue"
  AFTER INSERT OR UPDATE OF "isDeleted" OR DELETE ON "file"
  FOR EACH ROW EXECUTE FUNCTION "file_deletion_enqueue"();

CREATE FUNCTION "asset_orphan_on_delete"() RETURNS TRIGGER AS $$
BEGIN
  INSERT INTO "asset_orphan" ("objectName", "orphanedAt")
    VALUES (OLD."objectName", (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT)
    ON CONFLICT ("objectName") DO NOTHING;
  RETURN OLD;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER "asset_orphan_on_delete"
  AFTER DELETE ON "asset"
  FOR EACH ROW EXECUTE FUNCTION "asset_orphan_on_delete"();

-- Deleted files are recoverable for a while (FILE_RECOVERY_DAYS): the hard delete waits that long
-- after "requestedAt". Deleting a file again restarts its window, and restoring it takes it off the
-- queue (before, a queued file that was restored and deleted again kept its first "requestedAt").

CREATE OR REPLACE FUNCTION "file_deletion_enqueue"() RETURNS TRIGGER AS $$
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
      ON CONFLICT ("fileId") DO UPDATE
        SET "requestedAt" = EXCLUDED."requestedAt", "attempts" = 0, "lastError" = NULL;
  ELSIF TG_OP = 'UPDATE' AND OLD."isDeleted" AND NOT NEW."isDeleted" THEN
    DELETE FROM "file_deletion" WHERE "fileId" = NEW."id";
  END IF;
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

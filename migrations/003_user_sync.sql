-- The user-data change feed: every row change of "user", "file" and "file_state" is appended to "user_change"
-- together with the users whose data it touches, and a NOTIFY on "user_changes" wakes the readers. Readers
-- catch up by sequence number, so a missed notification only delays delivery (see sync/user/change_feed.ts).
--
-- Events: insert/update/delete are real row changes; "grant"/"revoke" add a file to / remove it from the data
-- of the listed users only (a guest's new / removed file_state), without the file row itself changing.

CREATE TABLE "user_change" (
  "seq" BIGSERIAL PRIMARY KEY,
  -- Lets the mutating transaction find its own changes before it commits (delivered before `commit`).
  "txid" BIGINT NOT NULL DEFAULT txid_current(),
  "userIds" TEXT[] NOT NULL,
  "table" TEXT NOT NULL CHECK ("table" IN ('user', 'file', 'file_state')),
  "event" TEXT NOT NULL CHECK ("event" IN ('insert', 'update', 'delete', 'grant', 'revoke')),
  "row" JSONB NOT NULL,
  -- The row before an update (the room side compares before/after of files).
  "before" JSONB,
  "createdAt" BIGINT NOT NULL DEFAULT (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT
);
CREATE INDEX "user_change_txid_idx" ON "user_change" ("txid");
CREATE INDEX "user_change_createdAt_idx" ON "user_change" ("createdAt");

CREATE FUNCTION "user_change_append"(
  users TEXT[], tbl TEXT, evt TEXT, r JSONB, b JSONB
) RETURNS VOID AS $$
BEGIN
  INSERT INTO "user_change" ("userIds", "table", "event", "row", "before")
    VALUES (COALESCE(users, '{}'), tbl, evt, r, b);
  -- One notification per transaction is enough (identical payloads are folded at commit).
  PERFORM pg_notify('user_changes', 'c');
END;
$$ LANGUAGE plpgsql;

-- The owner of a file and every user with a file_state for it.
CREATE FUNCTION "user_change_file_users"(file_id TEXT, owner_id TEXT) RETURNS TEXT[] AS $$
  SELECT array(
    SELECT owner_id
    UNION
    SELECT "userId" FROM "file_state" WHERE "fileId" = file_id
  );
$$ LANGUAGE sql STABLE;

CREATE FUNCTION "user_change_on_user"() RETURNS TRIGGER AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    PERFORM "user_change_append"(ARRAY[OLD."id"], 'user', 'delete', to_jsonb(OLD), NULL);
    RETURN OLD;
  END IF;
  IF TG_OP = 'UPDATE' AND NEW IS NOT DISTINCT FROM OLD THEN
    RETURN NEW;
  END IF;
  PERFORM "user_change_append"(ARRAY[NEW."id"], 'user', lower(TG_OP), to_jsonb(NEW), NULL);
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER "user_change_user"
  AFTER INSERT OR UPDATE OR DELETE ON "user"
  FOR EACH ROW EXECUTE FUNCTION "user_change_on_user"();

CREATE FUNCTION "user_change_on_file"() RETURNS TRIGGER AS $$
DECLARE
  users TEXT[];
BEGIN
  IF TG_OP = 'DELETE' THEN
    -- A BEFORE trigger: the file_state rows (and so the guests) are still there. ON DELETE CASCADE runs
    -- before the parent's AFTER triggers, which would see no guests any more.
    PERFORM "user_change_append"(
      "user_change_file_users"(OLD."id", OLD."ownerId"), 'file', 'delete', to_jsonb(OLD), NULL);
    RETURN OLD;
  END IF;
  IF TG_OP = 'UPDATE' AND NEW IS NOT DISTINCT FROM OLD THEN
    RETURN NEW;
  END IF;
  users := "user_change_file_users"(NEW."id", NEW."ownerId");
  IF TG_OP = 'UPDATE' AND OLD."ownerId" <> NEW."ownerId" THEN
    users := array_append(users, OLD."ownerId");
  END IF;
  PERFORM "user_change_append"(
    users, 'file', lower(TG_OP), to_jsonb(NEW), CASE WHEN TG_OP = 'UPDATE' THEN to_jsonb(OLD) END);
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER "user_change_file"
  AFTER INSERT OR UPDATE ON "file"
  FOR EACH ROW EXECUTE FUNCTION "user_change_on_file"();
CREATE TRIGGER "user_change_file_delete"
  BEFORE DELETE ON "file"
  FOR EACH ROW EXECUTE FUNCTION "user_change_on_file"();

CREATE FUNCTION "user_change_on_file_state"() RETURNS TRIGGER AS $$
DECLARE
  f "file";
BEGIN
  IF TG_OP = 'DELETE' THEN
    PERFORM "user_change_append"(ARRAY[OLD."userId"], 'file_state', 'delete', to_jsonb(OLD), NULL);
    -- A guest who loses their file_state loses the file. (When the file itself is being deleted it is
    -- no longer visible here, and its own delete event already went to everyone.)
    SELECT * INTO f FROM "file" WHERE "id" = OLD."fileId";
    IF FOUND AND f."ownerId" <> OLD."userId" THEN
      PERFORM "user_change_append"(ARRAY[OLD."userId"], 'file', 'revoke', to_jsonb(f), NULL);
    END IF;
    RETURN OLD;
  END IF;
  IF TG_OP = 'UPDATE' AND NEW IS NOT DISTINCT FROM OLD THEN
    RETURN NEW;
  END IF;
  IF TG_OP = 'INSERT' THEN
    -- A guest's new file_state brings them the file row, first, so the client has the file it refers to.
    SELECT * INTO f FROM "file" WHERE "id" = NEW."fileId";
    IF FOUND AND f."ownerId" <> NEW."userId" THEN
      PERFORM "user_change_append"(ARRAY[NEW."userId"], 'file', 'grant', to_jsonb(f), NULL);
    END IF;
  END IF;
  PERFORM "user_change_append"(ARRAY[NEW."userId"], 'file_state', lower(TG_OP), to_jsonb(NEW), NULL);
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER "user_change_file_state"
  AFTER INSERT OR UPDATE OR DELETE ON "file_state"
  FOR EACH ROW EXECUTE FUNCTION "user_change_on_file_state"();

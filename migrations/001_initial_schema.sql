-- The initial schema of the original backend: users, their files, per-user file state, assets and the
-- user-sync mutation numbers. Column names are quoted camelCase because clients see them as-is.

CREATE TABLE "user" (
  "id" TEXT PRIMARY KEY,
  "name" TEXT NOT NULL,
  "email" TEXT NOT NULL,
  "avatar" TEXT NOT NULL DEFAULT '',
  "color" TEXT NOT NULL DEFAULT '',
  "exportFormat" TEXT NOT NULL DEFAULT 'png',
  "exportTheme" TEXT NOT NULL DEFAULT 'light',
  "exportBackground" BOOLEAN NOT NULL DEFAULT TRUE,
  "exportPadding" BOOLEAN NOT NULL DEFAULT TRUE,
  "createdAt" BIGINT NOT NULL,
  "updatedAt" BIGINT NOT NULL,
  "flags" TEXT NOT NULL DEFAULT '',
  "locale" TEXT,
  "animationSpeed" BIGINT,
  "edgeScrollSpeed" BIGINT,
  "colorScheme" TEXT,
  "areKeyboardShortcutsEnabled" BOOLEAN,
  "enhancedA11yMode" BOOLEAN,
  "isSnapMode" BOOLEAN,
  "isWrapMode" BOOLEAN,
  "isDynamicSizeMode" BOOLEAN,
  "isPasteAtCursorMode" BOOLEAN,
  "showUiLabels" BOOLEAN
);

CREATE TABLE "file" (
  "id" TEXT PRIMARY KEY,
  "name" TEXT NOT NULL,
  "ownerId" TEXT NOT NULL REFERENCES "user" ("id") ON DELETE CASCADE,
  "thumbnail" TEXT NOT NULL DEFAULT '',
  "shared" BOOLEAN NOT NULL DEFAULT FALSE,
  "sharedLinkType" TEXT NOT NULL DEFAULT 'edit' CHECK ("sharedLinkType" IN ('view', 'edit')),
  "published" BOOLEAN NOT NULL DEFAULT FALSE,
  "lastPublished" BIGINT NOT NULL DEFAULT 0,
  "publishedSlug" TEXT NOT NULL,
  "createdAt" BIGINT NOT NULL,
  "updatedAt" BIGINT NOT NULL,
  "isEmpty" BOOLEAN NOT NULL DEFAULT TRUE,
  "isDeleted" BOOLEAN NOT NULL DEFAULT FALSE,
  "createSource" TEXT
);
CREATE INDEX "file_ownerId_idx" ON "file" ("ownerId");
CREATE UNIQUE INDEX "file_publishedSlug_idx" ON "file" ("publishedSlug");

CREATE TABLE "file_state" (
  "userId" TEXT NOT NULL REFERENCES "user" ("id") ON DELETE CASCADE,
  "fileId" TEXT NOT NULL REFERENCES "file" ("id") ON DELETE CASCADE,
  "firstVisitAt" BIGINT,
  "lastEditAt" BIGINT,
  "lastSessionState" TEXT,
  "lastVisitAt" BIGINT,
  "isFileOwner" BOOLEAN,
  "isPinned" BOOLEAN,
  PRIMARY KEY ("userId", "fileId")
);
CREATE INDEX "file_state_fileId_idx" ON "file_state" ("fileId");

CREATE TABLE "asset" (
  "objectName" TEXT PRIMARY KEY,
  "fileId" TEXT NOT NULL REFERENCES "file" ("id") ON DELETE CASCADE,
  "userId" TEXT REFERENCES "user" ("id") ON DELETE SET NULL
);
CREATE INDEX "asset_fileId_idx" ON "asset" ("fileId");

CREATE TABLE "user_mutation_number" (
  "userId" TEXT PRIMARY KEY REFERENCES "user" ("id") ON DELETE CASCADE,
  "mutationNumber" BIGINT NOT NULL DEFAULT 0
);

-- When a file stops being shared, guests lose it: delete every file_state row but the owner's.
CREATE FUNCTION "delete_guest_file_states_on_unshare"() RETURNS TRIGGER AS $$
BEGIN
  IF OLD."shared" = TRUE AND NEW."shared" = FALSE THEN
    DELETE FROM "file_state" WHERE "fileId" = OLD."id" AND "userId" <> OLD."ownerId";
  END IF;
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER "file_unshared_delete_guest_states"
  AFTER UPDATE OF "shared" ON "file"
  FOR EACH ROW EXECUTE FUNCTION "delete_guest_file_states_on_unshare"();

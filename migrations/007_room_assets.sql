-- Images and videos dropped on anonymous rooms (/r/…): uploaded through the server instead of
-- stored inline in the document. Keyed to the room; object names are shared with "asset" (one blob
-- store), so a name is taken when either table has it.

CREATE TABLE "room_asset" (
  "objectName" TEXT PRIMARY KEY,
  "roomId" TEXT NOT NULL,
  "createdAt" TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX "room_asset_roomId_idx" ON "room_asset" ("roomId");

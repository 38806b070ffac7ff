-- LiveStore event-log sync (sync/livestore/). One row per store with its head and durable backendId, and the
-- append-only event log. "backendId" must outlive nothing but the log itself: a new one makes every client
-- wipe its local data, so it is created once per store and never rewritten.

CREATE TABLE "livestore_store" (
  "storeId" TEXT PRIMARY KEY,
  "backendId" TEXT NOT NULL,
  -- seqNum of the last appended event; 0 (the root) for an empty log.
  "head" BIGINT NOT NULL DEFAULT 0,
  "createdAt" BIGINT NOT NULL,
  "updatedAt" BIGINT NOT NULL
);

CREATE TABLE "livestore_event" (
  "storeId" TEXT NOT NULL REFERENCES "livestore_store" ("storeId") ON DELETE CASCADE,
  "seqNum" BIGINT NOT NULL,
  "parentSeqNum" BIGINT NOT NULL,
  "name" TEXT NOT NULL,
  -- NULL when the client sent no args; JSON keeps the text as sent (unlike JSONB).
  "args" JSON,
  "clientId" TEXT NOT NULL,
  "sessionId" TEXT NOT NULL,
  -- Epoch milliseconds, shared by every event of one push.
  "createdAt" BIGINT NOT NULL,
  -- The primary key is the (store_id, seq_num) uniqueness guarantee: a second writer can never fork the log.
  PRIMARY KEY ("storeId", "seqNum"),
  -- LiveStore numbers global events densely; pull page info counts on it.
  CHECK ("seqNum" = "parentSeqNum" + 1)
);

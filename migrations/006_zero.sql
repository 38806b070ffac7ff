-- Rocicorp Zero (sync/zero/): zero-cache replicates "user", file and file_state from this
-- publication (it is started with ZERO_APP_PUBLICATIONS=zero_data, and refuses to start when the
-- publication is missing). Updates and deletes of file and file_state carry their whole old row.
-- Without wal_level=logical (and on embedded PGlite) this only records what to publish.

CREATE PUBLICATION zero_data FOR TABLE "file", "file_state", "user";
ALTER TABLE "file" REPLICA IDENTITY FULL;
ALTER TABLE "file_state" REPLICA IDENTITY FULL;

/**
 * The background hard delete of files. Deleting a file is a soft delete (`isDeleted`, or removing the
 * row); a trigger queues it in `file_deletion`, and once the recovery window has passed (the owner
 * may restore the file until then; a row removed outright goes at once) this worker removes
 * everything the file left behind: its room's data in KV, its history versions, its published copy,
 * its asset rows and their blob objects, and finally the file row. The queue is in Postgres, so the work survives restarts;
 * every step is idempotent, so several isolates (or a crash half-way) are harmless.
 *
 * @module
 */
import type { Database } from "../../db/database.ts";
import type { Logger } from "../../log.ts";
import type { BlobStore } from "../assets/blob_store.ts";
import { fileRoomId } from "../file_rooms.ts";
import type { RoomStore } from "../tldraw/room_store.ts";
import type { HistoryStore } from "./history.ts";

/** Options of {@link DeletionWorker}. */
export interface DeletionWorkerOptions {
  database: Database;
  /** Needs `deleteRoom`. */
  store: RoomStore;
  history: HistoryStore;
  blobs: BlobStore;
  log: Logger;
  /** How often the queue is checked (default 10 s; a deleted-file event also wakes it). */
  pollMs?: number;
  /** Files processed per round (default 20). */
  batch?: number;
  /** How long a soft-deleted file waits for its hard delete, restorable by its owner (ms). */
  recoveryMs: number;
}

/** Drains `file_deletion` and `asset_orphan`. Call {@link start}, and {@link stop} on shutdown. */
export class DeletionWorker {
  readonly #options: DeletionWorkerOptions;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = false;

  constructor(options: DeletionWorkerOptions) {
    this.#options = options;
  }

  /** Starts polling (the first round runs right away: work left by a previous process). */
  start(): void {
    this.wake();
  }

  /** Runs a round soon (after a file was deleted). */
  wake(): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#running = this.runOnce()
      .then(() => {}, (error) => this.#options.log.warn("hard delete round failed", { error }))
      .finally(() => {
        this.#running = undefined;
        if (this.#stopped) return;
        if (this.#again) {
          this.#again = false;
          this.wake();
        } else {
          this.#timer = setTimeout(() => this.wake(), this.#options.pollMs ?? 10_000);
        }
      });
  }

  /** One round: every queued file (up to the batch size), then orphaned blobs. */
  async runOnce(): Promise<{ files: number; blobs: number }> {
    const { db } = this.#options.database;
    const due = Date.now() - this.#options.recoveryMs;
    const queued = await db.selectFrom("file_deletion").select("fileId")
      .where((eb) =>
        eb.or([
          eb("requestedAt", "<=", due),
          eb.not(eb.exists(
            eb.selectFrom("file").select("file.id").whereRef(
              "file.id",
              "=",
              "file_deletion.fileId",
            ),
          )),
        ])
      )
      .orderBy("requestedAt").limit(this.#options.batch ?? 20).execute();
    let files = 0;
    for (const { fileId } of queued) {
      if (this.#stopped) break;
      try {
        if (await this.#hardDelete(fileId)) files++;
      } catch (error) {
        this.#options.log.warn("hard delete failed", { fileId, error });
        await db.updateTable("file_deletion")
          .set((eb) => ({ attempts: eb("attempts", "+", 1), lastError: String(error) }))
          .where("fileId", "=", fileId).execute();
      }
    }
    return { files, blobs: await this.#deleteOrphans() };
  }

  async #hardDelete(fileId: string): Promise<boolean> {
    const { database, store, history } = this.#options;
    const { db } = database;
    const file = await db.selectFrom("file").select("isDeleted").where("id", "=", fileId)
      .executeTakeFirst();
    if (file && !file.isDeleted) {
      // Restored before we got to it: nothing to do.
      await db.deleteFrom("file_deletion").where("fileId", "=", fileId).execute();
      return false;
    }
    const roomId = fileRoomId(fileId);
    await store.deleteRoom(roomId);
    await history.deleteRoom(roomId);
    await db.deleteFrom("published_file").where("fileId", "=", fileId).execute();
    // Asset rows go to asset_orphan (trigger); their bytes are removed below.
    await db.deleteFrom("asset").where("fileId", "=", fileId).execute();
    await db.transaction().execute(async (trx) => {
      await trx.deleteFrom("file").where("id", "=", fileId).where("isDeleted", "=", true)
        .execute();
      await trx.deleteFrom("file_deletion").where("fileId", "=", fileId).execute();
    });
    this.#options.log.info("file hard-deleted", { fileId });
    return true;
  }

  async #deleteOrphans(): Promise<number> {
    const { db } = this.#options.database;
    const orphans = await db.selectFrom("asset_orphan").select("objectName")
      .orderBy("orphanedAt").limit(100).execute();
    let deleted = 0;
    for (const { objectName } of orphans) {
      // Re-uploaded under the same name since: the object is in use again.
      const inUse = await db.selectFrom("asset").select("objectName")
        .where("objectName", "=", objectName).executeTakeFirst();
      try {
        if (!inUse) await this.#options.blobs.delete(objectName);
        await db.deleteFrom("asset_orphan").where("objectName", "=", objectName).execute();
        deleted++;
      } catch (error) {
        this.#options.log.warn("orphan blob delete failed", { objectName, error });
      }
    }
    return deleted;
  }

  /** Stops polling and waits for a round in progress. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }
}

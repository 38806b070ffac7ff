/**
 * The session directory of the KV room store: one `sess, sessionId` key per session with
 * `expireIn`, and its deadline stored in the value (KV deletes expired keys lazily). Writes go
 * through the store's group commit, so a heartbeat of many sessions is one atomic operation.
 *
 * @module
 */
import type { KvContext } from "./kv_writes.ts";
import {
  RoomStoreError,
  type SessionDirectory,
  type SessionEntry,
  StoreFailure,
} from "./room_store.ts";
import type { BatchedWrite } from "./kv_batcher.ts";

/** How the store writes: one atomic operation of `group`, with its size (see kv_batcher.ts). */
export type WriteFn = (
  group: string,
  size: Omit<BatchedWrite, "group" | "apply">,
  apply: (op: Deno.AtomicOperation) => void,
) => Promise<Deno.KvCommitResult | Deno.KvCommitError>;

/** Session entries on KV. */
export class KvSessions implements SessionDirectory {
  readonly #ctx: KvContext;
  readonly #write: WriteFn;

  constructor(ctx: KvContext, write: WriteFn) {
    this.#ctx = ctx;
    this.#write = write;
  }

  async putSession(roomId: string, entry: SessionEntry, ttlMs: number): Promise<void> {
    const key = this.#ctx.key(roomId, "sess", entry.sessionId);
    const bytes = 300 + (entry.presence ? JSON.stringify(entry.presence).length * 2 : 0);
    const result = await this.#write(
      `sess:${roomId}:${entry.sessionId}`,
      { checks: 0, checked: [], mutations: 1, bytes },
      (op) => op.set(key, entry, { expireIn: ttlMs }),
    );
    if (!result.ok) throw new RoomStoreError(StoreFailure.write_failed, "session entry write");
  }

  async deleteSession(roomId: string, sessionId: string): Promise<void> {
    const key = this.#ctx.key(roomId, "sess", sessionId);
    const result = await this.#write(
      `sess:${roomId}:${sessionId}`,
      { checks: 0, checked: [], mutations: 1, bytes: 200 },
      (op) => op.delete(key),
    );
    if (!result.ok) throw new RoomStoreError(StoreFailure.write_failed, "session entry delete");
  }

  async listSessions(roomId: string): Promise<SessionEntry[]> {
    const now = Date.now();
    const sessions: SessionEntry[] = [];
    const prefix = this.#ctx.key(roomId, "sess");
    for await (const e of this.#ctx.reader().list<SessionEntry>({ prefix })) {
      // expireIn deletes lazily; the stored deadline is authoritative.
      if (e.value.expiresAt > now) sessions.push(e.value);
    }
    return sessions;
  }
}

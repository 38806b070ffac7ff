/**
 * `GET /app/file/:fileId` (WebSocket): a file's tldraw room, through the same room engine as `/r/`.
 * Admission follows the file row: missing or deleted → `NOT_FOUND`; private and not the owner →
 * `FORBIDDEN` (`NOT_AUTHENTICATED` when anonymous); shared `view` → read-only for non-owners; shared
 * `edit` → read-write; the owner always read-write. Per-user join rate limit → `RATE_LIMITED`. A
 * signed-in visit is recorded in the user's `file_state` (a guest's "shared with me"), and a room
 * loaded for the join takes the file's name.
 * Refusals are accept-then-close 4099 because the tldraw client retries HTTP errors forever. A
 * signed-in user's file that is not there yet is waited for a moment (`newFileGraceMs`): the app
 * opens a new file's board as soon as it sends the file's creation on the user-data channel, and
 * the board's socket may arrive first (a `NOT_FOUND` would end the board for good).
 *
 * `GET /app/file/:fileId/readonly-link` (the owner): the file's read-only id. `/ro/<id>` opens the
 * file's room read-only for anyone while the file is shared (view or edit), without putting the
 * file in the visitor's list: the file's own id, which the edit link is made of, is never shown.
 *
 * @module
 */
import { Hono } from "hono";
import { fileRoomId, type FileRooms, type FileSessionMeta } from "../sync/file_rooms.ts";
import { recordFileVisit } from "../sync/user/data.ts";
import { CloseReason } from "../sync/tldraw/protocol.ts";
import { RoomAccessDenied, type RoomManager } from "../sync/tldraw/room_manager.ts";
import type { AttachOptions } from "../sync/tldraw/room.ts";
import { KvRateLimiter, type RateLimit } from "../sync/user/rate_limit.ts";
import { rateLimitCounter } from "../metrics.ts";
import type { AppDeps } from "./deps.ts";
import { meterSocket } from "./socket_metrics.ts";
import { HttpError } from "./errors.ts";
import type { UserData } from "./user_sync.ts";
import type { ReadonlyIds } from "../sync/readonly_ids.ts";
import { FILE_ID_PATTERN, ownedFileId } from "./file_param.ts";

const SESSION_ID_PATTERN = /^[\x21-\x7e]{1,128}$/;

/** Room joins per user (all isolates share the budget through KV). */
export const DEFAULT_FILE_JOIN_RATE: RateLimit = { limit: 120, windowMs: 60_000 };

const REFUSAL_REASONS = {
  not_found: CloseReason.NOT_FOUND,
  forbidden: CloseReason.FORBIDDEN,
  not_authenticated: CloseReason.NOT_AUTHENTICATED,
} as const;

/** How long a signed-in user's missing file is waited for before `NOT_FOUND` (ms). */
export const DEFAULT_NEW_FILE_GRACE_MS = 3_000;
// Pause between looks for a file that is not there yet (ms).
const NEW_FILE_POLL_MS = 100;

/** Options of {@link fileRoomRoutes}. */
export interface FileRoomRouteOptions {
  joinRate?: RateLimit;
  /** See {@link DEFAULT_NEW_FILE_GRACE_MS}. */
  newFileGraceMs?: number;
}

/** The authenticated file-room route. */
export function fileRoomRoutes(
  deps: AppDeps,
  rooms: RoomManager,
  userData: UserData,
  fileRooms: FileRooms,
  readonlyIds: ReadonlyIds,
  options: FileRoomRouteOptions = {},
): Hono {
  const joins = new KvRateLimiter(
    deps.kv,
    "file_room_join",
    options.joinRate ?? DEFAULT_FILE_JOIN_RATE,
    rateLimitCounter(deps.metrics),
  );
  // Visits being written; a drain waits for them (the database closes after it).
  const visits = new Set<Promise<void>>();
  deps.lifecycle.onDrain(() => Promise.allSettled(visits).then(() => {}));
  const app = new Hono();
  app.get("/app/file/:fileId/readonly-link", async (c) => {
    const fileId = await ownedFileId(c, deps.database, userData.auth, "shares a read-only link");
    c.header("Cache-Control", "no-store");
    return c.json({ readonlyId: await readonlyIds.forRoom(fileRoomId(fileId)) });
  });
  app.get("/app/file/:fileId", async (c) => {
    if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
      throw new HttpError("bad_request", "expected a WebSocket upgrade (tldraw sync)");
    }
    const fileId = c.req.param("fileId");
    const requested = c.req.query("sessionId");
    const sessionId = requested && SESSION_ID_PATTERN.test(requested)
      ? requested
      : crypto.randomUUID();
    // Read the token before the upgrade: the request is gone afterwards.
    const auth = await userData.auth.check(c);
    const { socket, response } = Deno.upgradeWebSocket(c.req.raw);
    meterSocket(socket, "tldraw", deps.metrics);
    deps.lifecycle.trackSocket(socket);

    const admit = async (): Promise<AttachOptions> => {
      if (!FILE_ID_PATTERN.test(fileId)) throw new RoomAccessDenied(CloseReason.NOT_FOUND);
      // A token that was sent but is not valid is an error, not an anonymous visit.
      if (!auth.ok && auth.reason !== "missing") {
        throw new RoomAccessDenied(CloseReason.NOT_AUTHENTICATED);
      }
      const identity = auth.ok ? auth.identity : undefined;
      if (identity && await joins.isLimited(identity.userId)) {
        throw new RoomAccessDenied(CloseReason.RATE_LIMITED);
      }
      let access = await userData.fileAccess(fileId, identity);
      // A file created a moment ago by its owner's app may not be committed yet.
      const graceUntil = Date.now() + (options.newFileGraceMs ?? DEFAULT_NEW_FILE_GRACE_MS);
      while (identity && access.kind === "not_found" && Date.now() < graceUntil) {
        await new Promise((resolve) => setTimeout(resolve, NEW_FILE_POLL_MS));
        access = await userData.fileAccess(fileId, identity);
      }
      if (access.kind !== "ok") throw new RoomAccessDenied(REFUSAL_REASONS[access.kind]);
      // The visit makes a shared file one of the guest's files; the session need not wait for it.
      if (identity) {
        const visit = recordFileVisit(deps.database.db, identity, fileId).catch((error) =>
          deps.log.warn("recording a file visit failed", { fileId, error })
        );
        visits.add(visit);
        visit.finally(() => visits.delete(visit));
      }
      await fileRooms.prepare(access.file);
      const meta: FileSessionMeta = { userId: identity?.userId, isOwner: access.isOwner };
      return {
        sessionId,
        isReadonly: access.readonly,
        meta,
        ...(identity ? { userId: identity.userId } : {}),
      };
    };

    // Admit only once the socket is open: a CONNECTING socket cannot be answered.
    socket.addEventListener("open", () => {
      const connection = rooms.connect(fileRoomId(fileId), socket, admit());
      socket.addEventListener("message", (event) => connection.message(event.data));
      socket.addEventListener("close", () => connection.close());
    });
    return response;
  });
  return app;
}

/**
 * tldraw rooms over WebSocket: `GET /r/:roomId` (read-write) and `GET /ro/:readonlyId` (read-only,
 * also under the legacy alias `/v/`), plus `GET /readonly-slug/:roomId`, which gives a room's
 * read-only id (tldraw's name for it: `{slug, isLegacy}`).
 *
 * A read-only link carries the room's read-only id, never its own id, so it cannot be turned into
 * an edit link: `/r/<read-only id>` joins the same room read-only too. `/ro/` also opens shared
 * snapshots by slug, and, for links made before read-only ids existed, an existing room by its own
 * id (read-only: such a link already shows the edit id, so keeping it working reveals nothing).
 * A file's read-only id (routes/file_rooms.ts) opens the file's room only while the file is shared.
 *
 * Thin: resolve the id, upgrade, hand the socket to the room manager. Problems after the upgrade
 * are reported as close 4099 + reason, because the tldraw client retries HTTP rejections forever
 * (spec 9.3). A browser opening a room address is sent to the app's page for that room.
 *
 * @module
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { CloseReason, SYNC_ERROR_CLOSE_CODE } from "../sync/tldraw/protocol.ts";
import type { RoomConnection, RoomManager } from "../sync/tldraw/room_manager.ts";
import type { ReadonlyIds } from "../sync/readonly_ids.ts";
import { fileIdOfRoom } from "../sync/file_rooms.ts";
import type { AppDeps } from "./deps.ts";
import { meterSocket } from "./socket_metrics.ts";
import { HttpError } from "./errors.ts";

/** Room ids: URL-safe, 1–128 characters (they end up in KV keys and log lines). */
export const ROOM_ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;
/** Session ids as sent by the client (`TAB_ID`): printable, 1–128 characters. */
const SESSION_ID_PATTERN = /^[\x21-\x7e]{1,128}$/;

/** Where a socket of a room route goes: a room and the mode, or nowhere. */
export type RoomTarget =
  | { kind: "room"; roomId: string; isReadonly: boolean }
  | { kind: "refused"; reason: CloseReason };

const NOT_FOUND: RoomTarget = { kind: "refused", reason: CloseReason.NOT_FOUND };

/** What the room routes resolve ids with. */
export interface RoomRouteDeps {
  rooms: RoomManager;
  readonlyIds: ReadonlyIds;
  /** The room serving the snapshot stored under `slug` (seeded on first use), or `null`. */
  snapshotJoin(slug: string): Promise<string | null>;
  /**
   * Whether a file's read-only link opens its room now: while the file is shared (view or
   * edit); `not_found` once it is deleted, `forbidden` while it is private.
   */
  fileLinkAccess(fileId: string): Promise<"ok" | "not_found" | "forbidden">;
}

/**
 * Resolves the id of a room route. `edit` (`/r/`): a read-only id opens its room read-only; any
 * other id is a room of its own, read-write. `readonly` (`/ro/`, `/v/`): a read-only id, a snapshot
 * slug, or (legacy links) an existing room's own id.
 */
export async function resolveRoomTarget(
  deps: RoomRouteDeps,
  mode: "edit" | "readonly",
  id: string,
): Promise<RoomTarget> {
  if (!ROOM_ID_PATTERN.test(id)) return NOT_FOUND;
  const room = await deps.readonlyIds.roomOf(id);
  if (room !== null) {
    const fileId = fileIdOfRoom(room);
    const access = fileId === undefined ? "ok" : await deps.fileLinkAccess(fileId);
    if (access === "ok") return { kind: "room", roomId: room, isReadonly: true };
    return {
      kind: "refused",
      reason: access === "not_found" ? CloseReason.NOT_FOUND : CloseReason.FORBIDDEN,
    };
  }
  if (mode === "edit") return { kind: "room", roomId: id, isReadonly: false };
  const snapshotRoom = await deps.snapshotJoin(id);
  if (snapshotRoom !== null) return { kind: "room", roomId: snapshotRoom, isReadonly: true };
  if (await deps.rooms.store.readClock(id) >= 0) {
    return { kind: "room", roomId: id, isReadonly: true };
  }
  return NOT_FOUND;
}

/** The room routes. */
export function roomRoutes(deps: AppDeps, routeDeps: RoomRouteDeps): Hono {
  const app = new Hono();
  const serve = (mode: "edit" | "readonly") => (c: Context) => {
    const request = c.req.raw;
    const id = c.req.param("roomId") ?? "";
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      // Someone pasted a room's address into a browser: show them the room.
      if (c.req.header("accept")?.includes("text/html")) {
        return c.redirect(`/#/${mode === "edit" ? "r" : "ro"}/${encodeURIComponent(id)}`, 302);
      }
      throw new HttpError("bad_request", "expected a WebSocket upgrade (tldraw sync)");
    }
    const url = new URL(request.url);
    const requestedSession = url.searchParams.get("sessionId");
    const sessionId = requestedSession && SESSION_ID_PATTERN.test(requestedSession)
      ? requestedSession
      : crypto.randomUUID();
    const { socket, response } = Deno.upgradeWebSocket(request);
    meterSocket(socket, "tldraw", deps.metrics);
    // The reference also accepts binary frames (decoded as UTF-8): take them as bytes.
    socket.binaryType = "arraybuffer";
    deps.lifecycle.trackSocket(socket);
    // Admit the session only once the socket is open: a CONNECTING socket cannot be answered.
    socket.addEventListener("open", () => {
      joinWhenResolved(
        socket,
        resolveRoomTarget(routeDeps, mode, id),
        (target) =>
          routeDeps.rooms.connect(target.roomId, socket, {
            sessionId,
            isReadonly: target.isReadonly,
          }),
        deps,
      );
    });
    return response;
  };
  app.get("/r/:roomId", serve("edit"));
  app.get("/ro/:roomId", serve("readonly"));
  app.get("/v/:roomId", serve("readonly"));
  app.get("/readonly-slug/:roomId", async (c) => {
    const id = c.req.param("roomId");
    if (!ROOM_ID_PATTERN.test(id)) throw new HttpError("not_found", "No such room");
    // Asked with a read-only id already: that is the read-only id (never one of its own).
    const slug = await routeDeps.readonlyIds.roomOf(id) !== null
      ? id
      : await routeDeps.readonlyIds.forRoom(id);
    c.header("Cache-Control", "no-store");
    return c.json({ slug, isLegacy: false });
  });
  return app;
}

/** Frames a client may send before its room is resolved (a real client sends one: `connect`). */
const MAX_PENDING_FRAMES = 64;

/** Connects once the target is known; frames (and a close) arriving meanwhile are kept in order. */
function joinWhenResolved(
  socket: WebSocket,
  target: Promise<RoomTarget>,
  connect: (target: Extract<RoomTarget, { kind: "room" }>) => RoomConnection,
  deps: AppDeps,
): void {
  const pending: (string | ArrayBuffer)[] = [];
  let connection: RoomConnection | undefined;
  let closed = false;
  socket.addEventListener("message", (event) => {
    if (connection) connection.message(event.data);
    else if (pending.length < MAX_PENDING_FRAMES) pending.push(event.data);
    else if (socket.readyState <= 1) socket.close(SYNC_ERROR_CLOSE_CODE, CloseReason.RATE_LIMITED);
  });
  socket.addEventListener("close", () => {
    closed = true;
    connection?.close();
  });
  target.then((resolved) => {
    if (resolved.kind === "refused") {
      if (socket.readyState <= 1) socket.close(SYNC_ERROR_CLOSE_CODE, resolved.reason);
      return;
    }
    connection = connect(resolved);
    for (const data of pending.splice(0)) connection.message(data);
    if (closed) connection.close();
  }, (error) => {
    deps.log.error("room join failed", { error });
    if (socket.readyState <= 1) socket.close(SYNC_ERROR_CLOSE_CODE, CloseReason.UNKNOWN_ERROR);
  });
}

/**
 * tldraw rooms over WebSocket: `GET /r/:roomId` (read-write), `GET /ro/:roomId` (read-only) and the
 * legacy read-only alias `GET /v/:roomId`. Thin: validate, upgrade, hand the socket to the room
 * manager. Problems after the upgrade are reported as close 4099 + reason, because the tldraw client
 * retries HTTP rejections forever (spec 9.3).
 *
 * @module
 */
import { Hono } from "hono";
import { CloseReason, SYNC_ERROR_CLOSE_CODE } from "../sync/tldraw/protocol.ts";
import type { RoomConnection, RoomManager } from "../sync/tldraw/room_manager.ts";
import type { AppDeps } from "./deps.ts";
import { meterSocket } from "./socket_metrics.ts";
import { HttpError } from "./errors.ts";

/** Room ids: URL-safe, 1–128 characters (they end up in KV keys and log lines). */
export const ROOM_ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;
/** Session ids as sent by the client (`TAB_ID`): printable, 1–128 characters. */
const SESSION_ID_PATTERN = /^[\x21-\x7e]{1,128}$/;

/**
 * The room routes, served by `rooms`. `snapshotJoin` (optional) maps a read-only join's id to the room
 * serving the snapshot stored under that slug, or `null` when it is not a snapshot slug.
 */
export function roomRoutes(
  deps: AppDeps,
  rooms: RoomManager,
  snapshotJoin?: (slug: string) => Promise<string | null>,
): Hono {
  const app = new Hono();
  const serve =
    (isReadonly: boolean) => (c: { req: { raw: Request; param(name: "roomId"): string } }) => {
      const request = c.req.raw;
      if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
        throw new HttpError("bad_request", "expected a WebSocket upgrade (tldraw sync)");
      }
      const roomId = c.req.param("roomId");
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
        if (!ROOM_ID_PATTERN.test(roomId)) {
          socket.close(SYNC_ERROR_CLOSE_CODE, CloseReason.NOT_FOUND);
          return;
        }
        if (isReadonly && snapshotJoin) {
          joinLater(
            socket,
            snapshotJoin(roomId).then((target) => target ?? roomId),
            (target) => rooms.connect(target, socket, { sessionId, isReadonly }),
            deps,
          );
          return;
        }
        const connection = rooms.connect(roomId, socket, { sessionId, isReadonly });
        socket.addEventListener("message", (event) => connection.message(event.data));
        socket.addEventListener("close", () => connection.close());
      });
      return response;
    };
  app.get("/r/:roomId", serve(false));
  app.get("/ro/:roomId", serve(true));
  app.get("/v/:roomId", serve(true));
  return app;
}

/** Connects once the room id is known; frames (and a close) arriving meanwhile are kept in order. */
function joinLater(
  socket: WebSocket,
  target: Promise<string>,
  connect: (roomId: string) => RoomConnection,
  deps: AppDeps,
): void {
  const pending: (string | ArrayBuffer)[] = [];
  let connection: RoomConnection | undefined;
  let closed = false;
  socket.addEventListener("message", (event) => {
    if (connection) connection.message(event.data);
    else pending.push(event.data);
  });
  socket.addEventListener("close", () => {
    closed = true;
    connection?.close();
  });
  target.then((roomId) => {
    connection = connect(roomId);
    for (const data of pending.splice(0)) connection.message(data);
    if (closed) connection.close();
  }, (error) => {
    deps.log.error("snapshot join failed", { error });
    if (socket.readyState <= 1) socket.close(SYNC_ERROR_CLOSE_CODE, CloseReason.UNKNOWN_ERROR);
  });
}

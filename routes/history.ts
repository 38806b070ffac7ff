/**
 * Version history of rooms: `GET /app/file/:fileId/history` (the file's owner) lists versions,
 * `GET …/history/:versionId` returns one with its document, `POST …/history/:versionId/restore`
 * replaces the live document with it (connected clients receive the change as a normal patch; the
 * restored state is recorded as a new version). The same three under `/admin/rooms/:roomId/history`
 * serve the anonymous `/r/` rooms, for admins only.
 *
 * @module
 */
import { type Context, Hono } from "hono";
import { replaceDocument } from "../sync/content/document.ts";
import { type VersionInfo, VersionReason } from "../sync/content/history.ts";
import type { Content } from "../sync/content/setup.ts";
import { fileRoomId } from "../sync/file_rooms.ts";
import type { RoomManager } from "../sync/tldraw/room_manager.ts";
import { migrateTldrFile, type TldrFile } from "../sync/tldraw/tldr_file.ts";
import { requireAdmin } from "./admin_auth.ts";
import type { AppDeps } from "./deps.ts";
import { HttpError } from "./errors.ts";
import { ownedFileId } from "./file_param.ts";
import { ROOM_ID_PATTERN } from "./rooms.ts";
import type { UserData } from "./user_sync.ts";

/** Replaces the live document of `roomId` with a version and records the result as a new version. */
export async function restoreVersion(
  rooms: RoomManager,
  content: Content,
  roomId: string,
  versionId: string,
): Promise<VersionInfo | null> {
  const version = await content.history.get(roomId, versionId);
  if (!version) throw new HttpError("not_found", "No such version");
  // Old versions were stored under the schema of their day: bring them up to today's first.
  const migrated = migrateTldrFile({
    tldrawFileFormatVersion: 1,
    schema: version.snapshot.schema as TldrFile["schema"],
    records: version.snapshot.records as TldrFile["records"],
  });
  if (!migrated.ok) {
    throw new HttpError("conflict", `The version cannot be restored: ${migrated.message}`);
  }
  try {
    await rooms.withRoom(
      roomId,
      (room) => room.updateDocument((current) => replaceDocument(current, migrated.records)),
    );
  } catch (error) {
    throw new HttpError("conflict", `The version cannot be restored: ${error}`);
  }
  return await content.recorder.saveNow(roomId, VersionReason.restore);
}

/** History routes for file owners and admins. */
export function historyRoutes(
  deps: AppDeps,
  rooms: RoomManager,
  userData: UserData,
  content: Content,
): Hono {
  const app = new Hono();

  /** The room of a file the caller owns (404 for missing/deleted files, 403 for others' files). */
  const ownedFileRoom = async (c: Context): Promise<string> =>
    fileRoomId(await ownedFileId(c, deps.database, userData.auth, "sees a file's history"));

  const adminRoom = async (c: Context): Promise<string> => {
    await requireAdmin(c, deps.config, userData.auth);
    const roomId = c.req.param("roomId") ?? "";
    if (!ROOM_ID_PATTERN.test(roomId)) throw new HttpError("not_found", "No such room");
    return roomId;
  };

  for (
    const [prefix, resolve] of [
      ["/app/file/:fileId/history", ownedFileRoom],
      ["/admin/rooms/:roomId/history", adminRoom],
    ] as const
  ) {
    app.get(prefix, async (c) => {
      const roomId = await resolve(c);
      c.header("Cache-Control", "no-store");
      return c.json({ versions: await content.history.list(roomId) });
    });
    app.get(`${prefix}/:versionId`, async (c) => {
      const roomId = await resolve(c);
      const version = await content.history.get(roomId, c.req.param("versionId"));
      if (!version) throw new HttpError("not_found", "No such version");
      // Versions never change: cacheable by the browser, but private (it is someone's document).
      c.header("Cache-Control", "private, max-age=3600");
      return c.json(version);
    });
    app.post(`${prefix}/:versionId/restore`, async (c) => {
      const roomId = await resolve(c);
      const version = await restoreVersion(rooms, content, roomId, c.req.param("versionId"));
      return c.json({ restored: c.req.param("versionId"), version });
    });
  }
  return app;
}

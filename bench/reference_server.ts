/**
 * The reference tldraw sync server, for comparison only (dev-only, never shipped): `TLSocketRoom` from
 * `@tldraw/sync-core` 5.4.2 hosted on `Deno.serve`, one room per room id, at the same URL shape as
 * ours (`/r/:roomId?sessionId=`).
 *
 * The reference keeps a room in memory only. So that "cold join" means the same thing for both
 * servers (the room is not loaded when the first client arrives), a room whose last session is removed
 * is closed and its snapshot kept as a JSON string (as a host would write it to a blob store); the
 * next socket for that room parses it into a new `TLSocketRoom`.
 *
 * Run: `deno run -A --v8-flags=--expose-gc bench/reference_server.ts` — prints
 * `{"ready":{"port":…,"controlPort":…}}` once listening (`PORT` env, default a free port).
 *
 * @module
 */
import { InMemorySyncStorage, type RoomSnapshot, TLSocketRoom } from "@tldraw/sync-core";
import { announce, serveControl } from "./server_control.ts";

/** A running reference server. */
export interface ReferenceServer {
  port: number;
  /** Rooms currently loaded. */
  readonly loadedRooms: number;
  shutdown(): Promise<void>;
}

const ROOM_PATH = /^\/r\/([A-Za-z0-9_-]{1,128})$/;

/** Serves reference rooms on `port` (0: a free port). */
export async function serveReference(port = 0): Promise<ReferenceServer> {
  const rooms = new Map<string, TLSocketRoom>();
  const saved = new Map<string, string>();
  const log = {
    warn: (...args: unknown[]) => console.error("reference warn:", ...args),
    error: (...args: unknown[]) => console.error("reference error:", ...args),
  };

  const roomFor = (roomId: string): TLSocketRoom => {
    const existing = rooms.get(roomId);
    if (existing && !existing.isClosed()) return existing;
    const json = saved.get(roomId);
    const room = new TLSocketRoom({
      ...(json
        ? { storage: new InMemorySyncStorage({ snapshot: JSON.parse(json) as RoomSnapshot }) }
        : {}),
      log,
      onSessionRemoved: (closing, { numSessionsRemaining }) => {
        if (numSessionsRemaining > 0 || rooms.get(roomId) !== closing) return;
        saved.set(roomId, JSON.stringify(closing.getCurrentSnapshot()));
        rooms.delete(roomId);
        closing.close();
      },
    });
    rooms.set(roomId, room);
    return room;
  };

  const { promise, resolve } = Promise.withResolvers<number>();
  const server = Deno.serve({
    port,
    hostname: "127.0.0.1",
    onListen: ({ port }) => resolve(port),
  }, (request) => {
    const url = new URL(request.url);
    const match = url.pathname.match(ROOM_PATH);
    if (!match || request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response("not found", { status: 404 });
    }
    const roomId = match[1]!;
    const sessionId = url.searchParams.get("sessionId") ?? crypto.randomUUID();
    const { socket, response } = Deno.upgradeWebSocket(request);
    // Hand the socket over only once it is open: the reference prunes sessions whose socket is still
    // CONNECTING whenever another client sends a message (spec appendix).
    socket.addEventListener("open", () => {
      roomFor(roomId).handleSocketConnect({ sessionId, socket });
    }, { once: true });
    return response;
  });
  return {
    port: await promise,
    get loadedRooms() {
      return rooms.size;
    },
    async shutdown() {
      for (const room of rooms.values()) room.close();
      rooms.clear();
      await server.shutdown();
    },
  };
}

if (import.meta.main) {
  const server = await serveReference(Number(Deno.env.get("PORT") ?? 0));
  const controlPort = await serveControl();
  Deno.addSignalListener("SIGTERM", async () => {
    await server.shutdown();
    Deno.exit(0);
  });
  announce({ port: server.port, controlPort });
}

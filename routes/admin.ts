/**
 * The admin API, for operators: `Authorization: Bearer <ADMIN_TOKEN>`, or a user token whose subject
 * is in `ADMIN_USER_IDS`. Everyone else gets 401 (no credentials) or 403.
 *
 * - `GET /admin` (a browser): the operator page of the web app (`/#/admin`).
 * - `GET /admin/health`: this isolate, its bus, KV and database.
 * - `GET /admin/stats`: this isolate's report: sockets, rooms, sessions and push latency histogram
 *   (cumulative; the operator page charts the differences).
 * - `GET /admin/isolates`: every live isolate's report (sync/isolate_reports.ts), this one's fresh.
 * - `GET /admin/rooms`: rooms loaded on this isolate with their sessions and clocks.
 * - `GET /admin/rooms/:roomId`: a room's clock and its sessions on every isolate (KV session entries).
 * - `GET /admin/rooms/:roomId/snapshot`: the room's document.
 * - `POST /admin/rooms/:roomId/close` `{sessionId?, reason?}`: close sessions, on every isolate.
 * - `POST /admin/users/:userId/reload`: make the user's clients reload their data, on every isolate.
 * - `GET /admin/debug/tail` (WebSocket): live log lines, only with `config.debugTail` (development;
 *   404 otherwise). See debug_tail.ts.
 *
 * @module
 */
import { Hono } from "hono";
import { z } from "zod";
import type { AdminCommands } from "../sync/admin_commands.ts";
import { pingKv } from "../sync/kv.ts";
import { CloseReason } from "../sync/tldraw/protocol.ts";
import type { RoomManager } from "../sync/tldraw/room_manager.ts";
import type { AppDeps } from "./deps.ts";
import { HttpError } from "./errors.ts";
import { readOptionalJsonBody } from "./body.ts";
import type { Authenticator } from "./auth/authenticator.ts";
import { requireAdmin } from "./admin_auth.ts";
import { debugTailHandler } from "./debug_tail.ts";
import { MetricsRegistry, serverMetrics } from "../metrics.ts";
import {
  type IsolateReport,
  type IsolateReports,
  type ReportedRoom,
  trimRooms,
} from "../sync/isolate_reports.ts";
import type { TldrawRoom } from "../sync/tldraw/room.ts";
import type { Lifecycle } from "./lifecycle.ts";

const closeBody = z.object({
  sessionId: z.string().min(1).max(128).optional(),
  reason: z.enum(Object.values(CloseReason) as [string, ...string[]]).optional(),
}).strict();

/** This isolate's report for the operator page, taken now. */
export function takeIsolateReport(
  rooms: RoomManager,
  lifecycle: Lifecycle,
  metrics: MetricsRegistry,
): IsolateReport {
  const { pushDuration } = serverMetrics(metrics);
  const pushes = pushDuration.merged();
  const loaded = rooms.list();
  return {
    isolate: rooms.isolateId,
    at: Date.now(),
    openSockets: lifecycle.openSockets,
    roomsLoaded: loaded.length,
    sessions: loaded.reduce((sum, room) => sum + room.getSessions().length, 0),
    pushes: { ...pushes, bounds: pushDuration.bounds },
    rooms: trimRooms(loaded.map(reportedRoom)),
  };
}

/** A loaded room as the operator sees it: its clock and its sessions here. */
function reportedRoom(room: TldrawRoom): ReportedRoom {
  return {
    roomId: room.roomId,
    clock: room.clock,
    sessions: room.getSessions().map(({ sessionId, state, isReadonly }) => ({
      sessionId,
      state,
      isReadonly,
    })),
  };
}

/** The admin routes. */
export function adminRoutes(
  deps: AppDeps,
  rooms: RoomManager,
  auth: Authenticator,
  commands: AdminCommands,
  reports: IsolateReports,
): Hono {
  const { config, kv, database } = deps;
  const registry = deps.metrics ?? new MetricsRegistry();
  const metrics = serverMetrics(registry);
  const app = new Hono();
  // The operator page (a page of the web app): a browser asks for it without credentials, which
  // the page then asks for.
  app.get("/admin", (c, next) => {
    if (!c.req.header("accept")?.includes("text/html")) return next();
    return c.redirect("/#/admin", 302);
  });

  app.use("/admin/*", async (c, next) => {
    await requireAdmin(c, config, auth);
    c.header("Cache-Control", "no-store");
    await next();
  });

  app.get("/admin/health", async (c) => {
    const check = async (fn: () => Promise<void>) => {
      try {
        await fn();
        return { ok: true };
      } catch (error) {
        return { ok: false, error: error instanceof Error ? error.message : String(error) };
      }
    };
    return c.json({
      isolate: rooms.isolateId,
      bus: config.bus,
      busConnected: deps.bus !== undefined,
      kv: await check(() => pingKv(kv)),
      db: await check(() => database.ping()),
      openSockets: deps.lifecycle.openSockets,
      roomsLoaded: rooms.size,
    });
  });

  app.get(
    "/admin/stats",
    (c) => c.json(takeIsolateReport(rooms, deps.lifecycle, registry)),
  );

  app.get("/admin/isolates", async (c) => c.json({ isolates: await reports.list() }));

  app.get("/admin/rooms", (c) =>
    c.json({
      isolate: rooms.isolateId,
      rooms: rooms.list().map(reportedRoom),
    }));

  app.get("/admin/rooms/:roomId", async (c) => {
    const roomId = c.req.param("roomId");
    const clock = await rooms.store.readClock(roomId);
    if (clock < 0) throw new HttpError("not_found", "no such room");
    const sessions = await rooms.store.listSessions(roomId);
    return c.json({ roomId, clock, sessions });
  });

  app.get("/admin/rooms/:roomId/snapshot", async (c) => {
    const roomId = c.req.param("roomId");
    if (await rooms.store.readClock(roomId) < 0) throw new HttpError("not_found", "no such room");
    const snapshot = await rooms.withRoom(
      roomId,
      (room) => Promise.resolve({ roomId, clock: room.clock, records: room.getRecords() }),
    );
    return c.json(snapshot);
  });

  app.post("/admin/rooms/:roomId/close", async (c) => {
    // No body closes every session of the room; a body that does not parse closes nothing.
    const parsed = closeBody.safeParse(await readOptionalJsonBody(c, 16 * 1024));
    if (!parsed.success) throw new HttpError("bad_request", "expected {sessionId?, reason?}");
    const closedHere = await commands.run({
      kind: "close_sessions",
      roomId: c.req.param("roomId"),
      ...(parsed.data.sessionId ? { sessionId: parsed.data.sessionId } : {}),
      ...(parsed.data.reason ? { reason: parsed.data.reason as CloseReason } : {}),
    });
    return c.json({ closedHere });
  });

  app.post("/admin/users/:userId/reload", async (c) => {
    const closedHere = await commands.run({ kind: "reload_user", userId: c.req.param("userId") });
    return c.json({ closedHere });
  });

  if (config.debugTail) {
    app.get(
      "/admin/debug/tail",
      debugTailHandler({
        log: deps.log,
        lifecycle: deps.lifecycle,
        dropped: metrics.debugTailDropped,
      }, deps.debugTail),
    );
  }
  return app;
}

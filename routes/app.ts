/**
 * Builds the Hono application from its dependencies. Routers stay thin: parse, authorize, hand over.
 *
 * @module
 */
import { Hono } from "hono";
import { cors } from "hono/cors";
import { requestId } from "hono/request-id";
import type { AppDeps } from "./deps.ts";
import { healthRoutes } from "./health.ts";
import { kvMeter, MetricsRegistry, serverMetrics } from "../metrics.ts";
import { meteredBus } from "../sync/bus/metered_bus.ts";
import { meteredKv } from "../sync/metered_kv.ts";
import { metricsRoutes } from "./metrics.ts";
import { httpMetrics } from "./middleware/http_metrics.ts";
import { livestoreRoutes, livestoreSettings } from "./livestore.ts";
import { refuseWhileDraining } from "./middleware/draining.ts";
import { errorHandler, notFoundHandler } from "./middleware/error_handler.ts";
import { requestLog } from "./middleware/request_log.ts";
import { createUserData } from "./user_sync.ts";
import { createRoomManager } from "../sync/tldraw/setup.ts";
import { roomRoutes } from "./rooms.ts";
import { ReadonlyIds } from "../sync/readonly_ids.ts";
import { FileSources } from "../sync/content/file_sources.ts";
import { replaceDocument } from "../sync/content/document.ts";
import { fileRoutes } from "./files.ts";
import { zeroRoutes } from "./zero.ts";
import { clientConfigRoutes } from "./client_config.ts";
import { fileRoomRoutes } from "./file_rooms.ts";
import { tldrImportRoutes } from "./tldr_import.ts";
import { adminRoutes, takeIsolateReport } from "./admin.ts";
import { IsolateReports } from "../sync/isolate_reports.ts";
import { watchEventLoop } from "../event_loop_delay.ts";
import { AdminCommands } from "../sync/admin_commands.ts";
import { FileRooms } from "../sync/file_rooms.ts";
import { jwtAccessHooks, tokenAuthHooks } from "../sync/livestore/hooks.ts";
import { defaultStoreAccess, isUserStore } from "../sync/livestore/store_access.ts";
import { createContent } from "../sync/content/setup.ts";
import { isSnapshotRoom, publishOnFileWrite } from "../sync/content/snapshots.ts";
import { historyRoutes } from "./history.ts";
import { snapshotJoiner, snapshotRoutes } from "./snapshots.ts";
import { uploadRoutes } from "./uploads.ts";
import { unfurlRoutes } from "./unfurl.ts";
import { webRoutes } from "./web.ts";

/** Creates the HTTP application. */
export function createApp(input: AppDeps): Hono {
  const app = new Hono();
  const metrics = input.metrics ?? new MetricsRegistry();
  const engine = serverMetrics(metrics);
  // Everything below shares this registry and sees the bus through its counters (one series per
  // direction and topic kind, looked up once: every bus message is counted).
  const busSeries = new Map<string, { inc(): void }>();
  const bus = input.bus &&
    meteredBus(input.bus, (direction, kind) => {
      const key = `${direction} ${kind}`;
      let series = busSeries.get(key);
      if (!series) busSeries.set(key, series = engine.busNotices.with({ direction, kind }));
      series.inc();
    });
  // Every KV operation of this isolate is counted (kv_operations_total).
  const kv = meteredKv(input.kv, kvMeter(metrics));
  const deps: AppDeps = { ...input, kv, metrics, ...(bus ? { bus } : {}) };
  app.use(requestId());
  app.use(requestLog(deps.log));
  app.use(httpMetrics(metrics));
  app.use(refuseWhileDraining(deps.lifecycle));
  const corsPolicy = cors({
    origin: deps.config.http.corsOrigins.includes("*") ? "*" : deps.config.http.corsOrigins,
    allowHeaders: ["Authorization", "Content-Type", "Range", "If-None-Match", "If-Range"],
    exposeHeaders: ["ETag", "Content-Range", "Accept-Ranges", "X-Request-Id"],
    maxAge: 600,
  });
  // The editor calls these from its own origin.
  for (const path of ["/app/*", "/unfurl", "/snapshots", "/snapshot/*"]) app.use(path, corsPolicy);
  app.route("/", healthRoutes(deps));
  app.route("/", metricsRoutes(deps, metrics));
  // Auth, the user-sync socket, /app/files and /app/file/:id/meta. `userData.feed.onFileChanged`,
  // `userData.fileAccess` and `userData.auth` are what the room routes need.
  // History, snapshots, publishing, assets, hard deletes, unfurling.
  const content = createContent(deps, deps.content);
  const readonlyIds = new ReadonlyIds(deps.kv);
  // A new file with a `createSource` starts as a copy of it, and publishing follows
  // `published`/`lastPublished`: both inside the transaction that writes the file row.
  const fileSources = new FileSources({
    store: content.store,
    snapshots: content.snapshots,
    publisher: content.publisher,
    readonlyIds,
    // `rooms` is built below; files are only created once the app serves requests.
    seedRoom: (roomId, records) =>
      rooms.withRoom(
        roomId,
        (room) => room.updateDocument((current) => replaceDocument(current, records)),
      ),
  });
  const publishHook = publishOnFileWrite(content.publisher, deps.log);
  const userData = createUserData(deps, {
    ...deps.userData,
    service: {
      ...deps.userData?.service,
      mutation: {
        ...deps.userData?.service?.mutation,
        afterFileWrite: async (trx, before, after) => {
          await fileSources.afterFileWrite(trx, before, after);
          await publishHook(trx, before, after);
        },
      },
    },
  });
  app.route("/", userData.routes);
  // File rooms follow their file rows (and their document names follow back).
  const fileRooms = new FileRooms({ database: deps.database, log: deps.log });
  const rooms = deps.rooms ?? createRoomManager(deps, {
    ...(deps.bus ? { bus: deps.bus } : {}),
    hooks: {
      onDocumentChanged: ({ roomId, clock }) => {
        fileRooms.onDocumentChanged(roomId).catch((error) =>
          deps.log.error("file rename from the editor failed", { roomId, error })
        );
        if (!isSnapshotRoom(roomId)) content.recorder.onDocumentChanged(roomId, clock);
      },
      onSessionRemoved: ({ roomId, remaining }) => {
        if (remaining === 0 && !isSnapshotRoom(roomId)) content.recorder.onLastSessionLeft(roomId);
      },
    },
  });
  content.recorder.readLoadedRooms((roomId) => rooms.loaded(roomId)?.documentText());
  // Registered after the rooms' own drain: their last sessions' versions are written first.
  deps.lifecycle.onDrain(() => content.stop());
  // A deleted file's hard delete starts now rather than at the next poll.
  userData.feed.onFileChanged((event) => {
    if (event.kind === "deleted" || (event.kind === "updated" && event.after.isDeleted)) {
      content.deletion.wake();
    }
  });
  metrics.gauge("sync_open_sockets", "Open WebSockets on this isolate", () => [
    [{}, deps.lifecycle.openSockets],
  ]);
  metrics.gauge("tldraw_rooms_loaded", "tldraw rooms loaded on this isolate", () => [
    [{}, rooms.size],
  ]);
  metrics.gauge(
    "db_queries_in_flight",
    "Database queries sent and not yet answered (waiting for a pooled connection or running)",
    () => [[{}, deps.database.queriesInFlight]],
  );
  fileRooms.follow(userData.feed, rooms);
  deps.lifecycle.onDrain(() => fileRooms.stop());
  app.route(
    "/",
    roomRoutes(deps, {
      rooms,
      readonlyIds,
      snapshotJoin: snapshotJoiner(rooms, content),
      fileLinkAccess: async (fileId) => {
        const access = await userData.fileAccess(fileId, undefined);
        return access.kind === "ok"
          ? "ok"
          : access.kind === "not_found"
          ? "not_found"
          : "forbidden";
      },
    }),
  );
  app.route("/", fileRoomRoutes(deps, rooms, userData, fileRooms, readonlyIds, deps.fileRooms));
  app.route("/", tldrImportRoutes(deps, rooms, userData));
  app.route("/", fileRoutes(deps, userData));
  app.route("/", zeroRoutes(deps, userData));
  const adminCommands = new AdminCommands({
    rooms,
    userSync: userData.service,
    log: deps.log,
    ...(deps.bus ? { bus: deps.bus } : {}),
  });
  deps.lifecycle.onDrain(() => adminCommands.stop());
  const reports = new IsolateReports({
    kv: deps.kv,
    take: () => takeIsolateReport(rooms, deps.lifecycle, metrics),
    intervalMs: deps.config.rooms.reportMs,
    log: deps.log,
  });
  reports.start();
  deps.lifecycle.onDrain(() => reports.stop());
  // Its series exists from the start: a scrape before the first tick shows zero ticks, not none.
  const loopDelay = engine.eventLoopDelay.with({});
  const loop = watchEventLoop((delay) => loopDelay.observe(delay));
  deps.lifecycle.onDrain(() => loop.stop());
  app.route("/", adminRoutes(deps, rooms, userData.auth, adminCommands, reports));
  app.route("/", historyRoutes(deps, rooms, userData, content));
  app.route("/", snapshotRoutes(deps, userData, content, readonlyIds));
  app.route(
    "/",
    uploadRoutes(deps, userData, content, {
      readonlyRoomOf: (id) => readonlyIds.roomOf(id),
      roomExists: async (roomId) => await rooms.store.readClock(roomId) >= 0,
    }),
  );
  app.route("/", unfurlRoutes(content.unfurler, userData.auth, content.limits.unfurl));
  // LiveStore: a JWT in the sync payload gets the per-store rule tied to our users, and `user:` and
  // `file:` stores need one; other stores take the shared token, or anyone when configured so.
  const { authToken, anonymous } = deps.config.livestore;
  app.route(
    livestoreSettings(deps.config).prefix,
    livestoreRoutes(deps, {
      hooks: jwtAccessHooks({
        verify: async (token) => ({ userId: (await userData.auth.verifier.verify(token)).userId }),
        canAccess: defaultStoreAccess(deps.database),
        requiresJwt: isUserStore,
        ...(authToken !== undefined
          ? { withoutJwt: tokenAuthHooks(authToken) }
          : anonymous
          ? { withoutJwt: {} }
          : {}),
      }),
    }),
  );
  app.route("/", clientConfigRoutes(deps.config));
  // The web app at `/` (a static build; see routes/web.ts).
  app.route("/", webRoutes(deps.web ?? { dir: deps.config.webDir }));
  app.onError(errorHandler(deps.log));
  app.notFound(notFoundHandler);
  return app;
}

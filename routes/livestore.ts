/**
 * LiveStore sync endpoints (`@livestore/sync-cf` 0.4.0 clients): any path under the prefix, routed by the
 * `storeId`, `payload` and `transport` query parameters as the client builds them.
 * - `GET …?transport=ws` with `Upgrade: websocket`: the WebSocket transport.
 * - `POST …?transport=http`: the HTTP transport (one RPC request in, a JSON array of frames out).
 *
 * Thin: decode the query, run `validatePayload`, hand the connection to sync/livestore/.
 *
 * @module
 */
import { type Context, Hono } from "hono";
import { cors } from "hono/cors";
import type { Config, LivestoreConfig } from "../config.ts";
import { rateLimitCounter, serverMetrics } from "../metrics.ts";
import { KvRateLimiter } from "../sync/user/rate_limit.ts";
import type { Bus } from "../sync/bus/bus.ts";
import { AppendQueue } from "../sync/livestore/append_queue.ts";
import type { EventStore } from "../sync/livestore/event_store.ts";
import { LivestoreEngine } from "../sync/livestore/engine.ts";
import { type HookContext, type LivestoreHooks, tokenAuthHooks } from "../sync/livestore/hooks.ts";
import { handleHttpRpc } from "../sync/livestore/http_transport.ts";
import { LivePullHub } from "../sync/livestore/live_pulls.ts";
import { PostgresEventStore } from "../sync/livestore/postgres_event_store.ts";
import { StoreIdSchema } from "../sync/livestore/wire.ts";
import { LivestoreConnection } from "../sync/livestore/ws_connection.ts";
import type { AppDeps } from "./deps.ts";
import { meterSocket } from "./socket_metrics.ts";
import { HttpError } from "./errors.ts";
import { readJsonBody } from "./body.ts";

/** The Postgres NOTIFY channel carrying "store S has head H" hints between processes. */
export const LIVESTORE_NOTIFY_CHANNEL = "livestore_heads";

/** LiveStore settings: `config.livestore` (`LIVESTORE_PATH_PREFIX`, `LIVESTORE_AUTH_TOKEN`). */
export type LivestoreSettings = LivestoreConfig;

/** The LiveStore settings in `config`. */
export function livestoreSettings(config: Config): LivestoreSettings {
  return config.livestore;
}

/** Code-level options of {@link livestoreRoutes}. */
export interface LivestoreRouteOptions {
  /** Replaces the default hooks (token check from the settings). */
  hooks?: LivestoreHooks;
  /** Overrides the configured auth token for the default hooks. */
  authToken?: string;
  /** Another event store (default: Postgres through `deps.database`). */
  store?: EventStore;
  /** Use Postgres LISTEN/NOTIFY between processes (default true). */
  notifications?: boolean;
  /** The cross-isolate bus for head hints (default `deps.bus`; `null` for none). */
  bus?: Bus | null;
  /** How often live pulls re-check their store's head, repairing lost notifications (default 2000 ms). */
  headCheckIntervalMs?: number;
}

const TRANSPORTS = ["ws", "http"] as const;

/** Decodes the `payload` query parameter, which the client URI-encodes twice. */
export function decodeSyncPayload(raw: string | undefined): unknown {
  if (raw === undefined || raw === "") return undefined;
  try {
    return JSON.parse(decodeURIComponent(raw));
  } catch {
    // Other clients may encode it once only.
    try {
      return JSON.parse(raw);
    } catch {
      throw new HttpError("bad_request", "payload is not URI-encoded JSON");
    }
  }
}

/** The LiveStore router; mount it at {@link livestoreSettings}' prefix. */
export function livestoreRoutes(deps: AppDeps, options: LivestoreRouteOptions = {}): Hono {
  const { config, database, lifecycle } = deps;
  const log = deps.log.child({ component: "livestore" });
  const instanceId = crypto.randomUUID();
  const notifications = options.notifications ?? true;
  const store = options.store ?? new PostgresEventStore(database, {
    instanceId,
    ...(notifications ? { notifyChannel: LIVESTORE_NOTIFY_CHANNEL } : {}),
  });
  const bus = options.bus === null ? undefined : options.bus ?? deps.bus;
  const queue = new AppendQueue();
  const hub = new LivePullHub({
    store,
    log,
    ...(notifications ? { notifier: database.notifier } : {}),
    ...(bus ? { bus } : {}),
    channel: LIVESTORE_NOTIFY_CHANNEL,
    instanceId,
    headCheckIntervalMs: options.headCheckIntervalMs ?? 2_000,
    onHead: (storeId, head) => queue.observe(storeId, head),
  });
  lifecycle.onDrain(() => hub.close());
  const hooks = options.hooks ??
    tokenAuthHooks(options.authToken ?? livestoreSettings(config).authToken);
  const { pushesPerMinute } = livestoreSettings(config);
  const pushLimiter = pushesPerMinute > 0
    ? new KvRateLimiter(
      deps.kv,
      "livestore_push",
      { limit: pushesPerMinute, windowMs: 60_000 },
      rateLimitCounter(deps.metrics),
    )
    : undefined;
  const engine = new LivestoreEngine({
    store,
    hub,
    hooks,
    log,
    queue,
    ...(pushLimiter
      ? {
        pushLimit: {
          isLimited: (key: string) => pushLimiter.isLimited(key),
          describe: `${pushesPerMinute} pushes per minute per client; retry later`,
        },
      }
      : {}),
  });
  const maxBytes = config.limits.maxMessageBytes;
  const rejects = deps.metrics && serverMetrics(deps.metrics).rejects;

  /** Parses the query and runs `validatePayload`; throws 400 on anything wrong. */
  const connect = async (c: Context): Promise<HookContext & { transport: string }> => {
    const storeId = StoreIdSchema.safeParse(c.req.query("storeId"));
    if (!storeId.success) throw new HttpError("bad_request", "storeId is missing or invalid");
    const transport = c.req.query("transport") ?? "ws";
    if (!(TRANSPORTS as readonly string[]).includes(transport)) {
      throw new HttpError("bad_request", `transport must be one of ${TRANSPORTS.join(", ")}`);
    }
    const payload = decodeSyncPayload(c.req.query("payload"));
    const headers = c.req.raw.headers;
    try {
      await hooks.validatePayload?.(payload, { storeId: storeId.data, headers });
    } catch (error) {
      log.info("livestore connection rejected", {
        storeId: storeId.data,
        reason: error instanceof Error ? error.message : String(error),
      });
      rejects?.inc({ channel: "livestore", code: "PAYLOAD_REJECTED" });
      throw new HttpError("bad_request", "sync payload rejected");
    }
    return { storeId: storeId.data, payload, headers, transport };
  };

  const upgrade = async (c: Context) => {
    const context = await connect(c);
    if (context.transport !== "ws") {
      throw new HttpError("bad_request", "use POST for transport=http");
    }
    if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
      // As sync-cf does: transport=ws without an upgrade is 426.
      return c.json({
        error: { code: "upgrade_required", message: "expected a WebSocket upgrade" },
        requestId: String(c.get("requestId") ?? ""),
      }, 426);
    }
    const { socket, response } = Deno.upgradeWebSocket(c.req.raw);
    meterSocket(socket, "livestore", deps.metrics);
    lifecycle.trackSocket(socket);
    new LivestoreConnection({
      socket,
      engine,
      context: { storeId: context.storeId, payload: context.payload, headers: context.headers },
      log,
      maxFrameBytes: maxBytes,
    });
    return response;
  };

  const http = async (c: Context) => {
    const context = await connect(c);
    if (context.transport !== "http") {
      throw new HttpError("bad_request", "POST needs transport=http");
    }
    const body = await readJsonBody(c, maxBytes);
    const reply = await handleHttpRpc(engine, {
      storeId: context.storeId,
      payload: context.payload,
      headers: context.headers,
    }, body);
    return c.body(reply, 200, { "content-type": "application/json" });
  };

  const app = new Hono();
  app.use(
    "*",
    cors({
      origin: config.http.corsOrigins.includes("*") ? "*" : config.http.corsOrigins,
      allowHeaders: ["Content-Type", "Authorization", "x-livestore-store-id"],
      maxAge: 600,
    }),
  );
  // The client routes by query parameters only, so any path under the prefix is accepted.
  for (const path of ["/", "/*"]) {
    app.get(path, upgrade);
    app.post(path, http);
  }
  return app;
}

/**
 * What the HTTP layer is built from. Tests build the app with their own KV and database.
 *
 * @module
 */
import type { Config } from "../config.ts";
import type { Database } from "../db/database.ts";
import type { Logger } from "../log.ts";
import type { MetricsRegistry } from "../metrics.ts";
import type { RoomManager } from "../sync/tldraw/room_manager.ts";
import type { Bus } from "../sync/bus/bus.ts";
import type { Lifecycle } from "./lifecycle.ts";
import type { FileRoomRouteOptions } from "./file_rooms.ts";
import type { UserDataOptions } from "./user_sync.ts";
import type { ContentOptions } from "../sync/content/setup.ts";
import type { WebRouteOptions } from "./web.ts";
import type { DebugTailOptions } from "./debug_tail.ts";

/** Dependencies handed to {@link createApp} and each router. */
export interface AppDeps {
  config: Config;
  kv: Deno.Kv;
  database: Database;
  log: Logger;
  lifecycle: Lifecycle;
  /** This isolate's metrics; created by `createApp` when absent. */
  metrics?: MetricsRegistry;
  /** tldraw rooms of this isolate; created by `createApp` from `kv` and `config` when absent. */
  rooms?: RoomManager;
  /** This isolate's endpoint on the cross-isolate bus (absent: single isolate, rooms poll KV). */
  bus?: Bus;
  /** Tunables and test hooks of the user-data surface (timers, rate limits, JWKS caching). */
  userData?: UserDataOptions;
  /** Tunables of the file-room route (join rate limit). */
  fileRooms?: FileRoomRouteOptions;
  /** Test seams of history, assets, hard deletes and unfurling. */
  content?: ContentOptions;
  /** Where the web app's build is served from (tests serve their own build). */
  web?: WebRouteOptions;
  /** Queue limits of the debug tail (tests use small ones). */
  debugTail?: DebugTailOptions;
}

/**
 * Builds the isolate's {@link RoomManager} from the app's dependencies: rooms on Deno KV, limits from
 * the config, and a drain hook so a shutdown finishes pending commits before sockets close.
 *
 * @module
 */
import type { Config } from "../../config.ts";
import type { Logger } from "../../log.ts";
import type { Bus } from "../bus/bus.ts";
import type { Lifecycle } from "../../routes/lifecycle.ts";
import { KvRoomStore } from "./kv_room_store.ts";
import { withLockedRetry } from "./locked_retry.ts";
import type { RoomHooks, RoomTimeouts } from "./room.ts";
import { RoomManager } from "./room_manager.ts";

/** What {@link createRoomManager} needs (a subset of `AppDeps`). */
export interface RoomSetupDeps {
  config: Config;
  kv: Deno.Kv;
  log: Logger;
  lifecycle: Lifecycle;
}

/** Optional parts of {@link createRoomManager}. */
export interface RoomSetupOptions {
  /** Engine timers (tests use short ones). */
  timeouts?: Partial<RoomTimeouts>;
  /** Cross-isolate clock notices (see {@link RoomManager}); without it rooms rely on polling. */
  bus?: Bus;
  /** What the host learns from every room (e.g. file rooms follow document renames). */
  hooks?: RoomHooks;
}

/** A room manager on KV with the configured limits, closed (with 1012) when the server drains. */
export function createRoomManager(
  deps: RoomSetupDeps,
  options: RoomSetupOptions = {},
): RoomManager {
  const { limits, rooms: roomConfig } = deps.config;
  const timeouts: Partial<RoomTimeouts> = {
    sessionTtl: roomConfig.sessionTtlMs,
    heartbeat: Math.max(250, Math.floor(roomConfig.sessionTtlMs / 3)),
    poll: roomConfig.pollMs,
    ...options.timeouts,
  };
  // A second handle on a KV file for reads (see KvRoomStoreOptions.readKv); `:memory:` and the
  // platform KV are left alone (a second `:memory:` handle is another database).
  const path = deps.config.kvPath;
  const readKv = path && path !== ":memory:" ? Deno.openKv(path) : undefined;
  const store = new KvRoomStore(deps.kv, readKv ? { readKv } : {});
  const rooms = new RoomManager({
    // Workers of one process share the KV file: a busy SQLite file is retried, not an error.
    store: withLockedRetry(store),
    log: deps.log.child({ component: "tldraw" }),
    limits: {
      maxSessions: limits.maxSessionsPerRoom,
      maxRoomBytes: limits.maxRoomBytes,
      maxMessageChars: limits.maxMessageBytes,
      maxRecordChars: limits.maxMessageBytes,
    },
    timeouts,
    ...(options.bus ? { bus: options.bus } : {}),
    ...(options.hooks ? { hooks: options.hooks } : {}),
  });
  deps.lifecycle.onDrain(async () => {
    await rooms.close();
    await store.closeReader();
  });
  return rooms;
}

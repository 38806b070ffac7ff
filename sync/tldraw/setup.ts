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
  const { limits } = deps.config;
  const rooms = new RoomManager({
    store: new KvRoomStore(deps.kv),
    log: deps.log.child({ component: "tldraw" }),
    limits: {
      maxSessions: limits.maxSessionsPerRoom,
      maxRoomBytes: limits.maxRoomBytes,
      maxMessageChars: limits.maxMessageBytes,
      maxRecordChars: limits.maxMessageBytes,
    },
    ...(options.timeouts ? { timeouts: options.timeouts } : {}),
    ...(options.bus ? { bus: options.bus } : {}),
    ...(options.hooks ? { hooks: options.hooks } : {}),
  });
  deps.lifecycle.onDrain(() => rooms.close());
  return rooms;
}

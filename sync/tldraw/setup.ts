/**
 * Builds the isolate's {@link RoomManager} from the app's dependencies: rooms on Deno KV, limits from
 * the config, and a drain hook so a shutdown finishes pending commits before sockets close.
 *
 * @module
 */
import type { Config } from "../../config.ts";
import type { Logger } from "../../log.ts";
import { kvMeter, type MetricsRegistry, type ServerMetrics, serverMetrics } from "../../metrics.ts";
import { meteredKv } from "../metered_kv.ts";
import type { Bus } from "../bus/bus.ts";
import type { Lifecycle } from "../../routes/lifecycle.ts";
import { KvRoomStore } from "./kv_room_store.ts";
import { withLockedRetry } from "./locked_retry.ts";
import { observedStore } from "./observed_store.ts";
import type { PushRequest } from "./protocol.ts";
import type { RoomHooks, RoomTimeouts } from "./room.ts";
import { RoomManager } from "./room_manager.ts";

/** What {@link createRoomManager} needs (a subset of `AppDeps`). */
export interface RoomSetupDeps {
  config: Config;
  kv: Deno.Kv;
  log: Logger;
  lifecycle: Lifecycle;
  /** Where commit conflicts and locked-file retries are counted (none: not counted). */
  metrics?: MetricsRegistry;
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
  const opened = path && path !== ":memory:" ? Deno.openKv(path) : undefined;
  // Its reads are counted with the other KV operations (kv_operations_total).
  const meter = deps.metrics && kvMeter(deps.metrics);
  const readKv = meter ? opened?.then((kv) => meteredKv(kv, meter)) : opened;
  const store = new KvRoomStore(deps.kv, {
    ...(readKv ? { readKv } : {}),
    commitsInFlight: roomConfig.kvCommitsInFlight,
    commitLingerMs: roomConfig.kvCommitLingerMs,
    remote: roomConfig.kvRemote,
  });
  const metrics = deps.metrics && serverMetrics(deps.metrics);
  const hooks: RoomHooks | undefined = metrics
    ? {
      ...options.hooks,
      ...pushTiming(metrics, options.hooks),
      onForwardFallback: (info) => {
        options.hooks?.onForwardFallback?.(info);
        metrics.forwardFallbacks.inc({}, info.pushes);
      },
    }
    : options.hooks;
  const rooms = new RoomManager({
    // Workers of one process share the KV file: a busy SQLite file is retried, not an error. Its
    // `sleep` runs once before each retry: that is where retries are counted.
    store: observedStore(
      withLockedRetry(store, {
        sleep: (ms) => {
          metrics?.lockedRetries.inc();
          return new Promise((resolve) => setTimeout(resolve, ms));
        },
      }),
      { onCommitConflict: () => metrics?.commitConflicts.inc() },
    ),
    onClockNotice: ({ late }) => {
      if (late) metrics?.busNoticesLate.inc();
    },
    log: deps.log.child({ component: "tldraw" }),
    limits: {
      maxSessions: limits.maxSessionsPerRoom,
      maxRoomBytes: limits.maxRoomBytes,
      maxMessageChars: limits.maxMessageBytes,
      maxRecordChars: limits.maxMessageBytes,
    },
    timeouts,
    ...(options.bus ? { bus: options.bus } : {}),
    ...(hooks ? { hooks } : {}),
  });
  deps.lifecycle.onDrain(async () => {
    await rooms.close();
    await store.closeReader();
  });
  return rooms;
}

/** Times each push from its frame to its push_result (`tldraw_push_duration_seconds`). */
function pushTiming(metrics: ServerMetrics, hooks: RoomHooks = {}): RoomHooks {
  const received = new WeakMap<PushRequest, number>();
  const byAction = new Map<string, { observe(seconds: number): void }>();
  return {
    onPushReceived: (push) => {
      hooks.onPushReceived?.(push);
      received.set(push, performance.now());
    },
    onPushAnswered: (push, action) => {
      hooks.onPushAnswered?.(push, action);
      const start = received.get(push);
      if (start === undefined) return;
      received.delete(push);
      let series = byAction.get(action);
      if (!series) byAction.set(action, series = metrics.pushDuration.with({ action }));
      series.observe((performance.now() - start) / 1000);
    },
  };
}

/**
 * The tldraw rooms served by this isolate: loads a room on its first socket, unloads it when its last
 * session is gone (the store keeps the document), and closes them all on shutdown.
 *
 * @module
 */
import type { Logger } from "../../log.ts";
import { withSpan } from "../../telemetry.ts";
import type { Bus } from "../bus/bus.ts";
import { CloseReason, SYNC_ERROR_CLOSE_CODE, type SyncCloseReason } from "./protocol.ts";
import {
  type AttachOptions,
  type RoomHooks,
  type RoomLimits,
  type RoomSocket,
  type RoomTimeouts,
  TldrawRoom,
} from "./room.ts";
import { BusRoomLink } from "./room_link.ts";
import { newIsolateId } from "./room_options.ts";
import type { RoomStore } from "./room_store.ts";

export { busTopic, forwardTopic, presenceTopic } from "./room_link.ts";

/** Options for {@link RoomManager}. */
export interface RoomManagerOptions {
  store: RoomStore;
  log: Logger;
  limits?: Partial<RoomLimits>;
  timeouts?: Partial<RoomTimeouts>;
  /** Identifies this isolate in session entries (default: random). */
  isolateId?: string;
  /** Passed to every room (the manager adds its own unloading on top). */
  hooks?: RoomHooks;
  /**
   * The rooms' link to other isolates (room_link.ts): commit notices, presence and forwarded
   * pushes. Lost messages are repaired by the rooms' periodic clock check (`timeouts.poll`).
   * Without a bus every isolate commits its own pushes and learns of others' commits by polling.
   */
  bus?: Bus;
  /**
   * A room clock notice arrived on the bus (metrics). `late`: the room was already at that clock or
   * beyond (its poll, a catch-up for a later notice, or its own connect read got there first), so the
   * notice brought no news. Contention notices are not reported.
   */
  onClockNotice?(info: { roomId: string; clock: number; late: boolean }): void;
}

/**
 * Thrown (or rejected) by an admission check passed to {@link RoomManager.connect}: the socket is
 * closed with 4099 and `reason` (e.g. `FORBIDDEN`, `NOT_FOUND`, `NOT_AUTHENTICATED`).
 */
export class RoomAccessDenied extends Error {
  constructor(readonly reason: SyncCloseReason) {
    super(reason);
    this.name = "RoomAccessDenied";
  }
}

/** The transport side of one socket in a room: feed it frames and the close event. */
export interface RoomConnection {
  message(data: string | ArrayBuffer | Uint8Array): void;
  close(): void;
}

/** Rooms per isolate. */
export class RoomManager {
  readonly #options: RoomManagerOptions;
  readonly #rooms = new Map<string, Promise<TldrawRoom>>();
  /** Rooms done loading, for synchronous lookups ({@link loaded}). */
  readonly #ready = new Map<string, TldrawRoom>();
  readonly #unloading = new Set<Promise<void>>();
  readonly #unsubscribe = new Map<string, () => void>();
  readonly isolateId: string;
  #closed = false;

  constructor(options: RoomManagerOptions) {
    this.#options = options;
    this.isolateId = options.isolateId ?? newIsolateId();
  }

  /** Number of rooms loaded (or loading). */
  get size(): number {
    return this.#rooms.size;
  }

  /** The rooms loaded on this isolate. */
  list(): TldrawRoom[] {
    return [...this.#ready.values()];
  }

  /** The store behind the rooms (room-wide facts such as every isolate's sessions). */
  get store(): RoomStore {
    return this.#options.store;
  }

  /** The room if it is loaded (and done loading) on this isolate; never loads it. */
  loaded(roomId: string): TldrawRoom | undefined {
    return this.#ready.get(roomId);
  }

  /**
   * Runs `fn` with the room (loading it if needed) and unloads it afterwards if no session uses it:
   * for server-side work such as seeding a room from an upload.
   */
  async withRoom<T>(roomId: string, fn: (room: TldrawRoom) => Promise<T>): Promise<T> {
    const room = await this.#attachable(roomId);
    try {
      return await fn(room);
    } finally {
      if (room.empty) this.#maybeUnload(roomId);
    }
  }

  /** The room, loading it from the store on first use. */
  get(roomId: string): Promise<TldrawRoom> {
    const existing = this.#rooms.get(roomId);
    if (existing) return existing;
    const { bus, log } = this.#options;
    const link = bus ? new BusRoomLink(bus, roomId, log) : undefined;
    const room = withSpan("tldraw.room.load", { "sync.room_id": roomId }, async (span) => {
      const loaded = await this.#load(roomId, link);
      span.setAttribute("tldraw.clock", loaded.clock);
      log.debug("room loaded", { roomId, clock: loaded.clock });
      return loaded;
    });
    this.#rooms.set(roomId, room);
    room.then((r) => {
      if (this.#rooms.get(roomId) === room) this.#ready.set(roomId, r);
    }, () => {});
    if (link) {
      // A room's messages are handed to it once it is loaded.
      const unsubscribe = link.listen((message) => {
        room.then((r) => {
          if (message.kind === "commit") {
            this.#options.onClockNotice?.({
              roomId,
              clock: message.clock,
              late: message.clock <= r.clock,
            });
          }
          r.receive(message);
        }, () => {});
      });
      this.#unsubscribe.set(roomId, unsubscribe);
    }
    // A failed load is not cached: the next socket tries again.
    room.catch(() => {
      if (this.#rooms.get(roomId) === room) this.#forget(roomId);
    });
    return room;
  }

  /** Loads a room with the manager's unloading and logging on top of the host's hooks. */
  #load(roomId: string, link: BusRoomLink | undefined): Promise<TldrawRoom> {
    const { log, hooks = {} } = this.#options;
    return TldrawRoom.load({
      roomId,
      store: this.#options.store,
      log,
      isolateId: this.isolateId,
      ...(this.#options.limits ? { limits: this.#options.limits } : {}),
      ...(this.#options.timeouts ? { timeouts: this.#options.timeouts } : {}),
      ...(link ? { link } : {}),
      hooks: {
        ...hooks,
        onSessionAdded: (info) => {
          hooks.onSessionAdded?.(info);
          log.debug("session joined", { roomId, sessionId: info.sessionId, ...userOf(info.meta) });
        },
        onSessionRemoved: (info) => {
          hooks.onSessionRemoved?.(info);
          log.debug("session left", {
            roomId,
            sessionId: info.sessionId,
            ...userOf(info.meta),
            remaining: info.remaining,
          });
          if (info.remaining === 0) this.#maybeUnload(roomId);
        },
      },
    });
  }

  /**
   * Attaches an open socket to a room. Frames and the close event are forwarded in order once the
   * room is loaded. `options` may be a promise (an access check run by the host, e.g. reading the
   * file's permissions): frames wait for it; a {@link RoomAccessDenied} closes the socket with 4099
   * and its reason, any other failure (or a room that fails to load) with UNKNOWN_ERROR.
   */
  connect(
    roomId: string,
    socket: RoomSocket,
    options: AttachOptions | Promise<AttachOptions>,
  ): RoomConnection {
    if (this.#closed) {
      socket.close();
      return { message: () => {}, close: () => {} };
    }
    let gone = false;
    const ready: Promise<TldrawRoom | null> = Promise.resolve(options)
      .then((attach) => gone ? null : this.#attach(roomId, socket, attach))
      .catch((error) => {
        const reason = error instanceof RoomAccessDenied ? error.reason : CloseReason.UNKNOWN_ERROR;
        if (!(error instanceof RoomAccessDenied)) {
          this.#options.log.error("room connect failed", { roomId, error });
        }
        if (socket.readyState <= 1) socket.close(SYNC_ERROR_CLOSE_CODE, reason);
        return null;
      });
    return {
      message: (data) => void ready.then((room) => room?.handleMessage(socket, data)),
      close: () => {
        gone = true;
        void ready.then((room) => room?.handleClose(socket));
      },
    };
  }

  async #attach(roomId: string, socket: RoomSocket, options: AttachOptions): Promise<TldrawRoom> {
    const room = await this.#attachable(roomId);
    room.attach(socket, options);
    return room;
  }

  /** The loaded room, waiting out an unload in progress (the room is then loaded afresh). */
  async #attachable(roomId: string): Promise<TldrawRoom> {
    for (;;) {
      const room = await this.get(roomId);
      if (!room.closed) return room;
      await Promise.all([...this.#unloading]);
    }
  }

  #forget(roomId: string): void {
    this.#rooms.delete(roomId);
    this.#ready.delete(roomId);
    this.#unsubscribe.get(roomId)?.();
    this.#unsubscribe.delete(roomId);
  }

  #maybeUnload(roomId: string): void {
    const pending = this.#rooms.get(roomId);
    if (!pending) return;
    const unload = (async () => {
      const room = await pending;
      await room.idle();
      if (!room.empty || this.#rooms.get(roomId) !== pending) return;
      this.#forget(roomId);
      await room.close();
    })().catch((error) => this.#options.log.warn("room unload failed", { roomId, error }))
      .finally(() => this.#unloading.delete(unload));
    this.#unloading.add(unload);
  }

  /**
   * Shutdown: finishes every room's queued commits, then closes its sockets with `code` (1012 by
   * default so clients reconnect to another instance) and stops its timers.
   */
  async close(code = 1012, reason = "server restarting"): Promise<void> {
    this.#closed = true;
    const rooms = await Promise.allSettled([...this.#rooms.values()]);
    for (const roomId of [...this.#rooms.keys()]) this.#forget(roomId);
    await Promise.all(
      rooms.map((r) => r.status === "fulfilled" ? r.value.close(code, reason) : undefined),
    );
    while (this.#unloading.size > 0) await Promise.all([...this.#unloading]);
  }
}

/** `{userId}` when a session's host data names its user (file rooms), for log lines. */
function userOf(meta: unknown): { userId?: string } {
  const userId = (meta as { userId?: unknown } | null | undefined)?.userId;
  return typeof userId === "string" ? { userId } : {};
}

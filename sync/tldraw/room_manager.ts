/**
 * The tldraw rooms served by this isolate: loads a room on its first socket, unloads it when its last
 * session is gone (the store keeps the document), and closes them all on shutdown.
 *
 * @module
 */
import type { Logger } from "../../log.ts";
import { withSpan } from "../../telemetry.ts";
import { type Bus, isJsonObject, type Json } from "../bus/bus.ts";
import { CloseReason, SYNC_ERROR_CLOSE_CODE, type SyncCloseReason } from "./protocol.ts";
import {
  type AttachOptions,
  type PresenceChange,
  type RoomHooks,
  type RoomLimits,
  type RoomSocket,
  type RoomTimeouts,
  TldrawRoom,
} from "./room.ts";
import type { RoomStore } from "./room_store.ts";
import { type ForwardMessage, parseForwardMessage } from "./forwarding.ts";
import { commitNotice, parseClockNotice } from "./clock_notice.ts";

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
   * Cross-isolate notices: after each commit the room's new clock is published on `tldraw:<roomId>`;
   * a notice from another isolate makes the local room catch up from the store. Lost notices are
   * repaired by the rooms' periodic clock check (`timeouts.poll`).
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

/** How long a room holds its commits back when another isolate reports contention (ms). */
const CONTENTION_YIELD_MS = 25;

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
    this.isolateId = options.isolateId ?? crypto.randomUUID();
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
    let room = this.#rooms.get(roomId);
    if (!room) {
      const hooks = this.#options.hooks ?? {};
      const bus = this.#options.bus;
      const log = this.#options.log;
      room = withSpan("tldraw.room.load", { "sync.room_id": roomId }, async (span) => {
        const loaded = await this.#load(roomId, hooks, bus);
        span.setAttribute("tldraw.clock", loaded.clock);
        log.debug("room loaded", { roomId, clock: loaded.clock });
        return loaded;
      });
      this.#rooms.set(roomId, room);
      const settled = room;
      room.then((r) => {
        if (this.#rooms.get(roomId) === settled) this.#ready.set(roomId, r);
      }, () => {});
      if (bus) {
        const loaded = room;
        // A room's messages: parsed (anything else on the topic is ignored), then handed to the
        // room once it is loaded; any message also tells it another isolate is there.
        const on = <T>(
          topic: string,
          parse: (body: Json) => T | null,
          deliver: (room: TldrawRoom, message: T) => void,
        ) =>
          bus.subscribe(topic, (body) => {
            const message = parse(body);
            if (message === null) return;
            loaded.then((r) => {
              r.notePeer();
              deliver(r, message);
            }, () => {});
          });
        const unsubscribes = [
          on(busTopic(roomId), parseClockNotice, (r, notice) => {
            // Another isolate lost commit races here twice or more in a row: give it a turn.
            if (notice.contended) r.yieldCommits(CONTENTION_YIELD_MS);
            else if (!notice.hello) {
              this.#options.onClockNotice?.({
                roomId,
                clock: notice.clock,
                late: notice.clock <= r.clock,
              });
            }
            r.noticeClock(notice.clock, notice);
          }),
          on(
            presenceTopic(roomId),
            parsePresenceChange,
            (r, change) => r.applyRemotePresence(change),
          ),
          on(forwardTopic(roomId), parseForwardMessage, (r, message) => r.receiveForward(message)),
        ];
        this.#unsubscribe.set(roomId, () => unsubscribes.forEach((unsubscribe) => unsubscribe()));
      }
      // A failed load is not cached: the next socket tries again.
      room.catch(() => {
        if (this.#rooms.get(roomId) === room) this.#forget(roomId);
      });
    }
    return room;
  }

  /**
   * "This isolate serves `roomId`, at `clock`": to isolates that may think they are alone in it
   * (see TldrawRoom.hasPeers), and so that a commit they did not announce is caught up. Not counted
   * as a late notice when the clock is known already.
   */
  #hello(roomId: string, clock: number): void {
    this.#options.bus?.publish(busTopic(roomId), { clock, hello: true }).catch((error) =>
      this.#options.log.warn("bus publish failed", { roomId, error })
    );
  }

  /** Loads a room with the manager's hooks (unloading, bus notices) on top of the host's. */
  #load(roomId: string, hooks: RoomHooks, bus: Bus | undefined): Promise<TldrawRoom> {
    const log = this.#options.log;
    return TldrawRoom.load({
      roomId,
      store: this.#options.store,
      log,
      isolateId: this.isolateId,
      ...(this.#options.limits ? { limits: this.#options.limits } : {}),
      ...(this.#options.timeouts ? { timeouts: this.#options.timeouts } : {}),
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
        onPresenceChanged: (change) => {
          hooks.onPresenceChanged?.(change);
          const { sessionId, presenceId, record } = change;
          // Alone in the room: nobody would read it (the session entries carry presence for
          // isolates that join later).
          if (this.#ready.get(roomId)?.hasPeers === false) return;
          bus?.publish(presenceTopic(roomId), { sessionId, presenceId, record } as Json).catch(
            (error) => this.#options.log.warn("presence publish failed", { roomId, error }),
          );
        },
        onDocumentChanged: (info) => {
          hooks.onDocumentChanged?.(info);
          // Alone in the room: an isolate that joins later loads from KV and polls the clock.
          if (this.#ready.get(roomId)?.hasPeers === false) return;
          bus?.publish(busTopic(roomId), commitNotice(info.clock, this.isolateId, info.steps))
            .catch((error) => this.#options.log.warn("bus publish failed", { roomId, error }));
        },
        onPeerFound: (info) => {
          hooks.onPeerFound?.(info);
          // Commits made while this isolate thought it was alone were not announced.
          this.#hello(roomId, info.clock);
        },
        // Without a bus nothing can be forwarded: every isolate commits its own pushes.
        ...(bus
          ? {
            onForward: (info: { roomId: string; message: ForwardMessage }) => {
              hooks.onForward?.(info);
              bus.publish(forwardTopic(roomId), info.message as unknown as Json).catch((error) =>
                this.#options.log.warn("forward publish failed", { roomId, error })
              );
            },
          }
          : {}),
        onContention: (info) => {
          hooks.onContention?.(info);
          bus?.publish(busTopic(roomId), { clock: info.clock, contended: true }).catch((error) =>
            this.#options.log.warn("bus publish failed", { roomId, error })
          );
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

/** The bus topic of a room's clock notices. */
export function busTopic(roomId: string): string {
  return `tldraw:${roomId}`;
}

/** The bus topic on which a room's isolates forward pushes to its writer (forwarding.ts). */
export function forwardTopic(roomId: string): string {
  return `tldraw-fwd:${roomId}`;
}

/** The bus topic of a room's presence changes. */
export function presenceTopic(roomId: string): string {
  return `tldraw-presence:${roomId}`;
}

/** `{userId}` when a session's host data names its user (file rooms), for log lines. */
function userOf(meta: unknown): { userId?: string } {
  const userId = (meta as { userId?: unknown } | null | undefined)?.userId;
  return typeof userId === "string" ? { userId } : {};
}

function parsePresenceChange(body: Json): PresenceChange | null {
  if (!isJsonObject(body)) return null;
  const { sessionId, presenceId, record } = body;
  if (typeof sessionId !== "string" || typeof presenceId !== "string") return null;
  if (record !== null && (typeof record !== "object" || Array.isArray(record))) return null;
  return {
    sessionId,
    presenceId,
    record: record as PresenceChange["record"],
  };
}

/**
 * Admin commands that concern every isolate (closing a room's sessions, reloading a user's data): run
 * here, and published on the bus so that the other isolates run them on the sessions they serve.
 * Best effort across isolates, like everything on the bus; the admin API says how many sessions the
 * receiving isolate closed itself.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import type { Bus, Json } from "./bus/bus.ts";
import { CloseReason, type SyncCloseReason } from "./tldraw/protocol.ts";
import type { RoomManager } from "./tldraw/room_manager.ts";
import type { UserSyncService } from "./user/service.ts";

/** The bus topic of admin commands. */
export const ADMIN_TOPIC = "admin";

/** A command. */
export type AdminCommand =
  | { kind: "close_sessions"; roomId: string; sessionId?: string; reason?: SyncCloseReason }
  | { kind: "reload_user"; userId: string };

const CLOSE_REASONS = new Set<string>(Object.values(CloseReason));

function parse(body: Json): AdminCommand | undefined {
  const value = body as Record<string, unknown> | null;
  if (value?.kind === "close_sessions" && typeof value.roomId === "string") {
    return {
      kind: "close_sessions",
      roomId: value.roomId,
      ...(typeof value.sessionId === "string" ? { sessionId: value.sessionId } : {}),
      ...(typeof value.reason === "string" && CLOSE_REASONS.has(value.reason)
        ? { reason: value.reason as SyncCloseReason }
        : {}),
    };
  }
  if (value?.kind === "reload_user" && typeof value.userId === "string") {
    return { kind: "reload_user", userId: value.userId };
  }
  return undefined;
}

/** Runs admin commands here and on the other isolates. */
export class AdminCommands {
  readonly #rooms: RoomManager;
  readonly #userSync: UserSyncService;
  readonly #bus: Bus | undefined;
  readonly #log: Logger;
  #unsubscribe: (() => void) | undefined;

  constructor(options: { rooms: RoomManager; userSync: UserSyncService; bus?: Bus; log: Logger }) {
    this.#rooms = options.rooms;
    this.#userSync = options.userSync;
    this.#bus = options.bus;
    this.#log = options.log.child({ component: "admin" });
    this.#unsubscribe = this.#bus?.subscribe(ADMIN_TOPIC, (body) => {
      const command = parse(body);
      if (command) this.#apply(command);
    });
  }

  /** Applies `command` on this isolate, publishes it to the others; returns the local count. */
  async run(command: AdminCommand): Promise<number> {
    const count = this.#apply(command);
    await this.#bus?.publish(ADMIN_TOPIC, command as unknown as Json).catch((error) =>
      this.#log.warn("admin command publish failed", { error })
    );
    return count;
  }

  #apply(command: AdminCommand): number {
    this.#log.info("admin command", { ...command });
    if (command.kind === "reload_user") return this.#userSync.reloadUser(command.userId);
    const room = this.#rooms.loaded(command.roomId);
    if (!room) return 0;
    let closed = 0;
    for (const session of room.getSessions()) {
      if (command.sessionId !== undefined && session.sessionId !== command.sessionId) continue;
      room.closeSession(session.sessionId, command.reason);
      closed++;
    }
    return closed;
  }

  /** Stops listening to the bus. */
  stop(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
  }
}

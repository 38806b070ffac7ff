/**
 * What a host configures on a room: limits, timers and the hooks through which it learns what the
 * room does. Shared by the room's parts (document, sessions, presence).
 *
 * @module
 */
import { type PushRequest, Timeouts } from "./protocol.ts";
import type { LogStep } from "./room_store.ts";

/** Limits enforced per room. */
export interface RoomLimits {
  /** Sessions per room, counted across isolates via the store's session entries. */
  maxSessions: number;
  /** Total JSON size of the document records (characters). */
  maxRoomBytes: number;
  /** One client message, whole or reassembled (characters). */
  maxMessageChars: number;
  /** One record's JSON (characters). */
  maxRecordChars: number;
  /** Longest record id (KV keys are at most 2 KiB). */
  maxRecordIdChars: number;
  /** Tombstones kept before the oldest are pruned (clients older than the cutoff get wipe_all). */
  maxTombstones: number;
  /** How many extra tombstones a prune removes, so it does not run on every delete. */
  tombstonePruneBuffer: number;
}

/** Timers (milliseconds); injectable so tests can use short values. */
export interface RoomTimeouts {
  connect: number;
  idle: number;
  removal: number;
  batch: number;
  /** How often idle / connect deadlines are checked. */
  prune: number;
  /** Lifetime of a session entry in the store; refreshed every {@link heartbeat}. */
  sessionTtl: number;
  heartbeat: number;
  /**
   * While sessions are connected, how often the store's clock is checked for commits made by other
   * isolates (repairs lost bus notices; 0 disables). {@link ALONE_SLOWDOWN} times less often while
   * no other isolate shows signs of being in the room.
   */
  poll: number;
  /**
   * How often (at most) the session entries are re-read to drop presence of sessions whose isolate
   * stopped refreshing them, and to learn presence whose bus notice was lost. A crashed isolate's
   * presence disappears within `sessionTtl + presenceSweep + poll`. {@link ALONE_SLOWDOWN} times
   * less often while the room is alone and shows no other isolate's presence.
   */
  presenceSweep: number;
  /** A presence change is mirrored into the session entry at most this often. */
  presenceWrite: number;
  /**
   * How long a sign of another isolate in the room counts (room_presence.ts `Peers`). A room
   * loaded less than two {@link presenceSweep}s ago repairs at the full rate: its sweeps find out
   * whether it is alone before it slows down.
   */
  peerMemory: number;
}

/**
 * A room no other isolate shows signs of being in (most rooms: one to five people, on one isolate)
 * checks the store's clock and the session entries this many times less often: there is rarely
 * anything to repair, and on Deno Deploy every read is billed. Another isolate's first message,
 * session entry or commit makes the room check at the full rate again.
 */
export const ALONE_SLOWDOWN = 5;

/**
 * A random isolate id: 12 hex digits (48 bits, unique enough among the isolates serving an app). It
 * travels in the bus messages between isolates (a forwarded push names its sender and its writer),
 * where two UUIDs were a fifth of a forwarded push's bytes.
 */
export function newIsolateId(): string {
  return crypto.randomUUID().replaceAll("-", "").slice(0, 12);
}

/** What the host learns from a room (app layer: persistence hooks, metering, unloading). */
export interface RoomHooks {
  onSessionAdded?(info: { roomId: string; sessionId: string; meta: unknown }): void;
  onSessionRemoved?(
    info: { roomId: string; sessionId: string; meta: unknown; remaining: number },
  ): void;
  /** After every commit made by this room (client pushes and server-side changes). */
  onDocumentChanged?(info: { roomId: string; clock: number; steps?: LogStep[] }): void;
  /** Forwarded pushes got no answer from the writer (or could not go): committed here instead. */
  onForwardFallback?(info: { roomId: string; pushes: number }): void;
  /** A push frame arrived from a session (metrics: the push's latency starts here). */
  onPushReceived?(push: PushRequest): void;
  /** `push` (as given to onPushReceived) got its push_result, queued for its session's socket. */
  onPushAnswered?(push: PushRequest, action: "commit" | "discard" | "rebase"): void;
}

/** The default limits (the config narrows them). */
export const DEFAULT_LIMITS: RoomLimits = {
  maxSessions: 50,
  maxRoomBytes: 25 * 1024 * 1024,
  maxMessageChars: 4 * 1024 * 1024,
  maxRecordChars: 4 * 1024 * 1024,
  maxRecordIdChars: 512,
  maxTombstones: 5_000,
  tombstonePruneBuffer: 1_000,
};

/** The default timers (the reference's where it has them). */
export const DEFAULT_TIMEOUTS: RoomTimeouts = {
  connect: Timeouts.connect,
  idle: Timeouts.idle,
  removal: Timeouts.removal,
  batch: Timeouts.batch,
  prune: 2_000,
  sessionTtl: 10_000,
  heartbeat: 3_000,
  poll: 1_000,
  presenceSweep: 2_000,
  presenceWrite: 1_000,
  // Well over the presence sweep (which re-reads the session entries) and an entry's time to live.
  peerMemory: 15_000,
};

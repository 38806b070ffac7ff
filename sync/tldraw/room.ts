/**
 * The tldraw room engine: sessions, the connect handshake, pushes, presence and batching, over a
 * {@link RoomStore} that is the sequencer and source of truth. The engine's in-memory document
 * (room_cache.ts) is a cache of the store: every change is committed against the clock the cache is
 * at; on a lost race the engine catches up from the store's change log ({@link TldrawRoom.catchUp}),
 * re-validates the push against the new state and retries. Other isolates' commits arrive as clock
 * notices (with their steps when small) or through the log; while another isolate is the room's
 * writer, pushes are forwarded to it (room_forwarding.ts). What goes to the sessions, and when, is
 * session_sender.ts; queued pushes are planned as groups in push_group.ts.
 *
 * Validation and migrations come from the tldraw schema (`@tldraw/store` `StoreSchema`); the diff
 * algebra from `@tldraw/sync-core`, so behaviour matches the reference (spec sections 3–6).
 *
 * @module
 */
import { DEFAULT_INITIAL_SNAPSHOT } from "@tldraw/sync-core";
import type { SerializedSchema, StoreSchema, UnknownRecord } from "@tldraw/store";
import { createTLSchema } from "@tldraw/tlschema";
import { isEqual } from "@tldraw/utils";
import { type Logger, silentLogger } from "../../log.ts";
import { ChunkAssembler, ChunkError } from "./chunks.ts";
import { encodeConnectReply } from "./data_frame.ts";
import {
  type CachedRecord,
  type ForwardDiff,
  planPush,
  type PushPlan,
  RecordSchema,
  SessionRejection,
  toNetworkDiff,
} from "./push_plan.ts";
import {
  type ClientMessage,
  clientMessageSchema,
  CloseReason,
  type ConnectReply,
  type ConnectRequest,
  type DataEvent,
  legacyReasonFor,
  LimitReason,
  parsePush,
  PROTOCOL_VERSION,
  type PushRequest,
  type PushResultAction,
  SYNC_ERROR_CLOSE_CODE,
  type SyncCloseReason,
  Timeouts,
  type WireNetworkDiff,
  type WireRecord,
  type WireSchema,
} from "./protocol.ts";
import type { ChangeSet, LogStep, RoomData, RoomStore, SessionEntry } from "./room_store.ts";
import { settledView, stepsFromReload } from "./catch_up.ts";
import { RoomCache } from "./room_cache.ts";
import {
  closeWith,
  OPEN,
  type RoomSocket,
  safeClose,
  type Session,
  SessionState,
} from "./session.ts";
import { SessionSender } from "./session_sender.ts";

export type { RoomSocket } from "./session.ts";
import { type ForwardMessage, ForwardReplies } from "./forwarding.ts";
import {
  type ForwardingHost,
  isRemote,
  type LocalPush,
  type PushEntry,
  RoomForwarding,
} from "./room_forwarding.ts";
import { type GroupContext, type GroupItem, MAX_GROUP_PUSHES, planGroup } from "./push_group.ts";
import { storedRecordId, storedRecordJson } from "./record_json.ts";

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
   * isolates (repairs lost bus notices; 0 disables).
   */
  poll: number;
  /**
   * How often (at most) the session entries are re-read to drop presence of sessions whose isolate
   * stopped refreshing them, and to learn presence whose bus notice was lost. A crashed isolate's
   * presence disappears within `sessionTtl + presenceSweep + poll`.
   */
  presenceSweep: number;
  /** A presence change is mirrored into the session entry at most this often. */
  presenceWrite: number;
}

/** What the host learns from a room (app layer: persistence hooks, metering, unloading). */
export interface RoomHooks {
  onSessionAdded?(info: { roomId: string; sessionId: string; meta: unknown }): void;
  onSessionRemoved?(
    info: { roomId: string; sessionId: string; meta: unknown; remaining: number },
  ): void;
  /** After every commit made by this room (client pushes and server-side changes). */
  onDocumentChanged?(info: { roomId: string; clock: number; steps?: LogStep[] }): void;
  /**
   * A push here lost a second commit race in a row: another isolate keeps committing to this room
   * first. The host asks the other isolates (bus) to {@link TldrawRoom.yieldCommits} briefly.
   */
  onContention?(info: { roomId: string; clock: number }): void;
  /**
   * This isolate thought it was alone in the room (nothing published on the bus) and learned of
   * another isolate there; `clock` is its current clock.
   */
  onPeerFound?(info: { roomId: string; clock: number }): void;
  /** A local session's presence changed (`record`) or went away (`null`): for other isolates. */
  onPresenceChanged?(change: PresenceChange & { roomId: string }): void;
  /**
   * A message for the room's other isolates on its forwarding topic (pushes for the writer, the
   * writer's outcomes; see forwarding.ts). Without this hook the room never forwards.
   */
  onForward?(info: { roomId: string; message: ForwardMessage }): void;
  /** Forwarded pushes got no answer from the writer (or could not go): committed here instead. */
  onForwardFallback?(info: { roomId: string; pushes: number }): void;
  /** A push frame arrived from a session (metrics: the push's latency starts here). */
  onPushReceived?(push: PushRequest): void;
  /** `push` (as given to onPushReceived) got its push_result, queued for its session's socket. */
  onPushAnswered?(push: PushRequest, action: "commit" | "discard" | "rebase"): void;
}

/** A presence record of one session, or its removal (`record: null`). */
export interface PresenceChange {
  sessionId: string;
  presenceId: string;
  record: WireRecord | null;
}

/** Options for {@link TldrawRoom.load}. */
export interface RoomOptions {
  roomId: string;
  store: RoomStore;
  /** Record schema; default `createTLSchema()`. */
  schema?: StoreSchema<UnknownRecord, unknown>;
  log?: Logger;
  /** Identifies this isolate in session entries. */
  isolateId?: string;
  limits?: Partial<RoomLimits>;
  timeouts?: Partial<RoomTimeouts>;
  hooks?: RoomHooks;
}

/** How a socket joins a room. */
export interface AttachOptions {
  sessionId: string;
  isReadonly: boolean;
  /** Host data about the session (e.g. the user), handed back in hooks. */
  meta?: unknown;
  userId?: string;
}

const DEFAULT_LIMITS: RoomLimits = {
  maxSessions: 50,
  maxRoomBytes: 25 * 1024 * 1024,
  maxMessageChars: 4 * 1024 * 1024,
  maxRecordChars: 4 * 1024 * 1024,
  maxRecordIdChars: 512,
  maxTombstones: 5_000,
  tombstonePruneBuffer: 1_000,
};

const DEFAULT_TIMEOUTS: RoomTimeouts = {
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
};

// Rooms with fewer records load quickly record by record: no compacted snapshot for them.
const SNAPSHOT_MIN_RECORDS = 100;

// How long a sign of another isolate in the room keeps this one publishing on the bus: well over
// the presence sweep (which re-reads the session entries) and an entry's time to live.
const PEER_MEMORY_MS = 15_000;

// Lost commit races in a row before a server-side update is given up (each one means another
// isolate committed and ours was re-validated against it).
const MAX_COMMIT_ATTEMPTS = 20;
// Clients' pushes are not given up after a number of lost races but after this long losing them:
// under load a loser's catch-up takes long enough for the winner to commit again many times, and
// giving up closes sockets (the clients reconnect and push again, which only adds load).
const COMMIT_RACE_BUDGET_MS = 15_000;
// Pause before a retry after the second lost race: up to this many ms times the attempt, random,
// and at most RETRY_JITTER_MAX_MS: shorter than the turn other isolates give (see yieldCommits).
// (Pauses growing to 64 ms and turns growing with the loser's attempts cut the 200-rooms-spread
// benchmark's throughput from 0.52x to 0.33x of one isolate: waiting costs more than racing.)
const RETRY_JITTER_MS = 2;
const RETRY_JITTER_MAX_MS = 8;
// Longest a room holds its commits back when another isolate reports contention.
const MAX_YIELD_MS = 100;

/** One tldraw room served by this isolate. Create with {@link TldrawRoom.load}. */
export class TldrawRoom {
  readonly roomId: string;
  readonly #store: RoomStore;
  readonly #recordSchema: RecordSchema;
  readonly #log: Logger;
  readonly #isolateId: string;
  readonly #limits: RoomLimits;
  readonly #timeouts: RoomTimeouts;
  readonly #hooks: RoomHooks;

  readonly #cache = new RoomCache();

  readonly #sessions = new Map<string, Session>();
  readonly #bySocket = new Map<RoomSocket, Session>();
  readonly #presences = new Map<string, WireRecord>();
  /** Presence of sessions served by other isolates (from the bus), by presence id. */
  readonly #remotePresences = new Map<string, { sessionId: string; record: WireRecord }>();
  #lastPresenceSweep = 0;
  /** When this isolate last saw a sign of another isolate in this room (see {@link hasPeers}). */
  #peerSeenAt = 0;
  /** Commits wait until then (epoch ms): another isolate asked for a turn. */
  #yieldUntil = 0;
  readonly #forwarding: RoomForwarding;
  /** Serialises everything that reads or advances the document (connects, pushes, catch-ups). */
  #queue: Promise<void> = Promise.resolve();
  #pending = 0;
  readonly #sender: SessionSender;
  /** Pushes waiting in the queue as one group that later pushes may still join. */
  #openGroup: PushEntry[] | null = null;
  #pruneTimer: ReturnType<typeof setInterval> | null = null;
  #heartbeatTimer: ReturnType<typeof setInterval> | null = null;
  #pollTimer: ReturnType<typeof setInterval> | null = null;
  #catchUpQueued: Promise<void> | null = null;
  #closed = false;
  /** Store writes not awaited by anyone (session entries); awaited by {@link close}. */
  readonly #background = new Set<Promise<unknown>>();

  private constructor(options: RoomOptions) {
    this.roomId = options.roomId;
    this.#store = options.store;
    this.#recordSchema = RecordSchema.for(options.schema ?? defaultSchema());
    this.#log = (options.log ?? silentLogger).child({ roomId: options.roomId });
    this.#isolateId = options.isolateId ?? crypto.randomUUID();
    this.#limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.#timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
    this.#hooks = options.hooks ?? {};
    this.#forwarding = new RoomForwarding(this.#forwardingHost());
    this.#sender = new SessionSender({
      batchMs: this.#timeouts.batch,
      log: this.#log,
      clock: () => this.#cache.clock,
      onPushAnswered: (push, action) => this.#hooks.onPushAnswered?.(push, action),
    });
  }

  /** Loads (or creates, with tldraw's default document and page) a room from the store. */
  static async load(options: RoomOptions): Promise<TldrawRoom> {
    const room = new TldrawRoom(options);
    let data = await room.#store.load(room.roomId);
    if (!data) {
      const initial: RoomData = {
        meta: {
          documentClock: 0,
          tombstoneHistoryStartsAtClock: 0,
          schema: room.#recordSchema.wire,
        },
        records: DEFAULT_INITIAL_SNAPSHOT.documents.map((d) => ({
          state: structuredClone(d.state) as unknown as WireRecord,
          lastChangedClock: 0,
        })),
        tombstones: new Map(),
      };
      // Another isolate may create it at the same moment; then load theirs.
      data = await room.#store.create(room.roomId, initial)
        ? initial
        : await room.#store.load(room.roomId);
      if (!data) throw new Error(`room ${room.roomId} vanished while being created`);
    }
    room.#replaceCache(data);
    // A listing is not a snapshot: re-read whatever changed while loading.
    await room.#catchUpNow();
    await room.#migrateStoredRecords(data.meta.schema);
    return room;
  }

  /** Current document clock of this isolate's cache. */
  get clock(): number {
    return this.#cache.clock;
  }

  /** Sessions in this isolate (any state but removed). */
  get sessionCount(): number {
    return this.#sessions.size;
  }

  /** `true` after {@link close}. */
  get closed(): boolean {
    return this.#closed;
  }

  /** A deep copy of a document record, or `undefined`. */
  getRecord(id: string): WireRecord | undefined {
    const record = this.#cache.records.get(id);
    return record ? structuredClone(record.state) : undefined;
  }

  /** Document records (copies), e.g. for snapshots. */
  getRecords(): WireRecord[] {
    return [...this.#cache.records.values()].map((r) => structuredClone(r.state));
  }

  /**
   * The document at {@link clock}, for copies (history versions): the records as their JSON texts,
   * from the cache (records loaded from the store are not parsed for it).
   */
  documentText(): { clock: number; schema: WireSchema; recordTexts: string[] } {
    return {
      clock: this.#cache.clock,
      schema: this.#recordSchema.wire,
      recordTexts: [...this.#cache.records.values()].map(storedRecordJson),
    };
  }

  /** Current presence records of this isolate's sessions. */
  getPresences(): WireRecord[] {
    return [...this.#presences.values()].map((p) => structuredClone(p));
  }

  /** Summary of the sessions (for the host and tests). */
  getSessions(): { sessionId: string; state: string; isReadonly: boolean; meta: unknown }[] {
    return [...this.#sessions.values()].map((s) => ({
      sessionId: s.sessionId,
      state: s.state,
      isReadonly: s.isReadonly,
      meta: s.meta,
    }));
  }

  /**
   * Registers a socket whose `open` event has fired. The room-wide session limit is checked against
   * the store first (ROOM_FULL); frames that arrive meanwhile are handled afterwards, in order.
   */
  attach(socket: RoomSocket, options: AttachOptions): void {
    if (this.#closed) {
      safeClose(socket);
      return;
    }
    const now = Date.now();
    const session: Session = {
      sessionId: options.sessionId,
      socket,
      state: SessionState.admitting,
      presenceId: null,
      isReadonly: options.isReadonly,
      meta: options.meta,
      userId: options.userId,
      startedAt: now,
      lastInteraction: now,
      schema: null,
      requiresDownMigrations: false,
      supportsStringAppend: true,
      requiresLegacyRejection: false,
      assembler: new ChunkAssembler(this.#limits.maxMessageChars),
      outbox: [],
      batchOpen: false,
      removalTimer: null,
      resultSlots: [],
      presenceWriteTimer: null,
    };
    this.#bySocket.set(socket, session);
    this.#enqueue(async () => {
      try {
        await this.#admit(session);
      } catch (error) {
        // The store failed (KV unreachable): nothing was admitted; the client may retry.
        this.#log.error("session admission failed", { sessionId: session.sessionId, error });
        this.#bySocket.delete(socket);
        session.state = SessionState.removed;
        closeWith(socket, SYNC_ERROR_CLOSE_CODE, CloseReason.UNKNOWN_ERROR);
      }
    });
  }

  async #admit(session: Session): Promise<void> {
    if (session.state !== SessionState.admitting) return; // closed while waiting
    const entries = await this.#store.listSessions(this.roomId);
    this.#notePeerEntries(entries);
    this.#learnRemotePresences(entries, session.sessionId);
    const others = entries.filter((e) => e.sessionId !== session.sessionId);
    if (others.length >= this.#limits.maxSessions) {
      this.#log.info("room full", { sessionId: session.sessionId, sessions: others.length });
      this.#bySocket.delete(session.socket);
      session.state = SessionState.removed;
      closeWith(session.socket, SYNC_ERROR_CLOSE_CODE, CloseReason.ROOM_FULL);
      return;
    }
    await this.#putSessionEntry(session);
    if (session.state !== SessionState.admitting) {
      // The socket closed while we were writing the entry.
      this.#track(this.#store.deleteSession(this.roomId, session.sessionId));
      return;
    }
    const existing = this.#sessions.get(session.sessionId);
    session.presenceId = existing?.presenceId ?? this.#recordSchema.presenceType?.createId() ??
      null;
    if (existing) {
      // Same tab reconnecting: the old socket is stale. Its late close event is ignored because it
      // is no longer the session's socket (the reference's bug: it killed the new session).
      this.#clearSessionTimers(existing);
      this.#bySocket.delete(existing.socket);
      existing.state = SessionState.removed;
      if (existing.socket.readyState === OPEN) safeClose(existing.socket);
    }
    session.state = SessionState.awaiting_connect;
    this.#sessions.set(session.sessionId, session);
    this.#startTimers();
    if (!existing) {
      this.#hooks.onSessionAdded?.({
        roomId: this.roomId,
        sessionId: session.sessionId,
        meta: session.meta,
      });
    }
  }

  /** Feeds one frame from a socket (text, or bytes decoded as UTF-8). */
  handleMessage(socket: RoomSocket, data: string | ArrayBuffer | Uint8Array): void {
    const session = this.#bySocket.get(socket);
    if (!session || session.state === SessionState.removed) return;
    const text = typeof data === "string" ? data : new TextDecoder().decode(data);
    const result = session.assembler.push(text);
    if (result.kind === "pending") return;
    if (result.kind === "error") {
      this.#log.info("bad frame", { sessionId: session.sessionId, error: result.error });
      if (result.error === ChunkError.invalid_json) {
        this.#reject(session, CloseReason.UNKNOWN_ERROR);
      } else if (result.error === ChunkError.too_large) {
        this.#reject(session, LimitReason.MESSAGE_TOO_LARGE);
      } else {
        // The reference closes without a code (the client reconnects).
        safeClose(session.socket);
        this.#cancel(session);
      }
      return;
    }
    const push = parsePush(result.data);
    const parsed = push
      ? { success: true as const, data: push }
      : clientMessageSchema.safeParse(result.data);
    if (!parsed.success) {
      this.#log.info("bad message", {
        sessionId: session.sessionId,
        type: (result.data as { type?: unknown })?.type,
      });
      this.#reject(session, CloseReason.UNKNOWN_ERROR);
      return;
    }
    this.#dispatch(session, parsed.data);
  }

  #dispatch(session: Session, message: ClientMessage): void {
    switch (message.type) {
      case "ping":
        // Answered at once, outside the queue: pong may overtake queued data (spec 1.2).
        if (session.state !== SessionState.connected) return;
        session.lastInteraction = Date.now();
        this.#sender.sendNow(session, { type: "pong" });
        return;
      case "connect":
        this.#enqueue(() => this.#handleConnect(session, message));
        return;
      case "push":
        this.#hooks.onPushReceived?.(message);
        this.#submit({ session, message });
        return;
    }
  }

  /** Queues a push; pushes queued back to back (while a commit is in flight) form one group. */
  #submit(entry: PushEntry): void {
    if (this.#openGroup) {
      this.#openGroup.push(entry);
      return;
    }
    const group: PushEntry[] = [entry];
    this.#enqueue(async () => {
      // Other isolates forward pushes here: while the store writes something else, theirs (which
      // come a bus hop after the local ones) keep joining this group. Otherwise the group would
      // commit the local pushes alone and theirs right after, twice the commits for the same
      // pushes. Not when only local sessions push: planning groups while a write is in flight
      // keeps the store busier than bigger groups would.
      const slot = this.#openGroup === group && this.#forwarding.takesForwarded() &&
          changesDocument(group)
        ? this.#store.writeSlot?.()
        : undefined;
      if (slot) await slot;
      if (this.#openGroup === group) this.#openGroup = null;
      return this.#handlePushes(group);
    });
    this.#openGroup = group;
  }

  /** The socket closed or errored. Ignored for sockets that were replaced by a reconnect. */
  handleClose(socket: RoomSocket): void {
    const session = this.#bySocket.get(socket);
    if (!session) return;
    this.#bySocket.delete(socket);
    if (session.state === SessionState.admitting) {
      session.state = SessionState.removed;
      return;
    }
    if (this.#sessions.get(session.sessionId) !== session) return;
    this.#cancel(session);
  }

  /** Closes a session, with 4099 + `reason` when given (kick), else a plain close (reconnect). */
  closeSession(sessionId: string, reason?: SyncCloseReason): void {
    const session = this.#sessions.get(sessionId);
    if (!session) return;
    if (reason) this.#reject(session, reason);
    else {
      safeClose(session.socket);
      this.#removeSession(session);
    }
  }

  /** Sends an application message to one connected session. */
  sendCustomMessage(sessionId: string, data: unknown): void {
    const session = this.#sessions.get(sessionId);
    if (session?.state === SessionState.connected) {
      this.#sender.sendNow(session, { type: "custom", data });
    }
  }

  /**
   * Reads changes other isolates committed after this cache's clock and forwards them to the local
   * sessions as one patch (or re-hydrates everyone when the log no longer reaches back).
   */
  catchUp(): Promise<void> {
    // Several notices in a row need one read, not one each.
    return this.#catchUpQueued ??= this.#enqueue(() => {
      this.#catchUpQueued = null;
      return this.#catchUpNow();
    });
  }

  /**
   * Presence of a session on another isolate (from the bus): forwarded to the local sessions and
   * included in connect replies. Sessions whose store entry expired (crashed isolate) are dropped by
   * the periodic check.
   */
  applyRemotePresence(change: PresenceChange): void {
    if (this.#closed) return;
    const prev = this.#remotePresences.get(change.presenceId);
    // A session that moved here from another isolate has its own (local) presence now.
    if (change.record && this.#sessions.has(change.sessionId)) return;
    if (change.record) {
      const record = { ...change.record, id: change.presenceId };
      this.#remotePresences.set(change.presenceId, { sessionId: change.sessionId, record });
      this.#broadcast({
        puts: { [change.presenceId]: prev ? [prev.record, record] : record },
        deletes: [],
      }, null);
    } else if (prev) {
      this.#remotePresences.delete(change.presenceId);
      this.#broadcast({ puts: {}, deletes: [change.presenceId] }, null);
    }
  }

  async #sweepRemotePresences(): Promise<void> {
    this.#lastPresenceSweep = Date.now();
    const entries = await this.#store.listSessions(this.roomId);
    this.#notePeerEntries(entries);
    this.#learnRemotePresences(entries);
    if (this.#remotePresences.size === 0) return;
    const live = new Set(entries.map((e) => e.sessionId));
    const gone: string[] = [];
    for (const [id, { sessionId }] of this.#remotePresences) {
      if (!live.has(sessionId) || this.#sessions.has(sessionId)) gone.push(id);
    }
    for (const id of gone) this.#remotePresences.delete(id);
    if (gone.length > 0) this.#broadcast({ puts: {}, deletes: gone }, null);
  }

  /**
   * Presence mirrored in other isolates' session entries that this isolate has not heard of on the
   * bus (it joined later, or the notice was lost). Known presence is not overwritten: the bus is
   * newer than an entry written up to {@link RoomTimeouts.presenceWrite} ago.
   */
  #learnRemotePresences(entries: SessionEntry[], joining?: string): void {
    for (const entry of entries) {
      if (!entry.presence || entry.isolateId === this.#isolateId) continue;
      // A session that moved here: its old entry is about to be replaced.
      if (entry.sessionId === joining || this.#sessions.has(entry.sessionId)) continue;
      if (this.#remotePresences.has(entry.presence.presenceId)) continue;
      this.applyRemotePresence({
        sessionId: entry.sessionId,
        presenceId: entry.presence.presenceId,
        record: entry.presence.record,
      });
    }
  }

  /**
   * Another isolate keeps losing commit races on this room (it reported contention on the bus):
   * hold this isolate's commits back for `ms`, so that the one that had to catch up gets a turn.
   * Without it, the isolate that just won commits again before the loser has re-read the log, and
   * the loser can starve. Only fairness rides on it: a lost request changes nothing else.
   */
  yieldCommits(ms: number): void {
    this.#yieldUntil = Math.max(this.#yieldUntil, Date.now() + Math.min(ms, MAX_YIELD_MS));
  }

  /**
   * Whether another isolate may have sessions in this room: one of its session entries was seen
   * (on admission, or by the presence sweep every few seconds) or one of its bus messages arrived
   * (see {@link notePeer}) within the last {@link PEER_MEMORY_MS}. While alone, nothing needs to
   * go on the bus: an isolate that joins later reads the session entries and the KV log, and its
   * own first bus message or entry makes this one publish again.
   */
  get hasPeers(): boolean {
    return Date.now() - this.#peerSeenAt < PEER_MEMORY_MS;
  }

  /**
   * Another isolate shares this room (its bus message or session entry). When this isolate thought
   * it was alone, it did not publish its sessions' latest presence; it does now, so that the
   * newcomer does not keep a stale copy from the session entries; and its commits were not
   * announced either: `onPeerFound` tells the clock.
   */
  notePeer(): void {
    const wasAlone = !this.hasPeers;
    this.#peerSeenAt = Date.now();
    if (!wasAlone || this.#closed) return;
    this.#hooks.onPeerFound?.({ roomId: this.roomId, clock: this.#cache.clock });
    for (const session of this.#sessions.values()) {
      const record = session.presenceId ? this.#presences.get(session.presenceId) : undefined;
      if (!record || !session.presenceId) continue;
      this.#hooks.onPresenceChanged?.({
        roomId: this.roomId,
        sessionId: session.sessionId,
        presenceId: session.presenceId,
        record,
      });
    }
  }

  #notePeerEntries(entries: SessionEntry[]): void {
    if (entries.some((entry) => entry.isolateId !== this.#isolateId)) this.notePeer();
  }

  /** A forwarding message from another isolate of this room (from the bus, see forwarding.ts). */
  receiveForward(message: ForwardMessage): void {
    this.#forwarding.receive(message);
  }

  /**
   * A notice that the store reached `clock` (from the bus), from `writer`, with the steps that got
   * it there when they were small: catch up if that is news (from the steps when they start right
   * after this cache's clock, else from the store).
   */
  noticeClock(clock: number, notice: { writer?: string; steps?: LogStep[] } = {}): void {
    const { writer, steps } = notice;
    if (writer) this.#forwarding.heardFrom(writer);
    if (clock <= this.#cache.clock || this.#closed) return;
    if (!steps?.length) {
      void this.catchUp();
      return;
    }
    void this.#enqueue(async () => {
      if (this.#cache.clock >= clock) return;
      const next = steps.findIndex((step) => step.clock === this.#cache.clock + 1);
      if (next < 0) return await this.#catchUpNow();
      if (writer) this.#forwarding.noteWriter({ isolateId: writer, at: Date.now() });
      for (const step of steps.slice(next)) this.#applyStep(step);
      this.#forwarding.pump();
    });
  }

  /**
   * A server-side edit (restore, rename, …): `update` receives a copy of the document records and
   * returns the records to put and ids to remove. Validated, committed and broadcast like a push.
   */
  updateDocument(
    update: (records: WireRecord[]) => { puts?: WireRecord[]; removes?: string[] },
  ): Promise<void> {
    return this.#enqueueResult(async () => {
      for (let attempt = 0; attempt < MAX_COMMIT_ATTEMPTS; attempt++) {
        const { puts = [], removes = [] } = update(this.getRecords());
        const diff: WireNetworkDiff = {};
        for (const record of puts) diff[record.id] = ["put", record];
        for (const id of removes) diff[id] = ["remove"];
        const plan = this.#planPush(null, { type: "push", clientClock: 0, diff });
        if (!plan.docDiff) return;
        if (await this.#commitPlan(plan) !== undefined) {
          this.#broadcast(plan.docForward, null, plan.docDiff);
          return;
        }
        await this.#catchUpNow();
      }
      throw new Error("server-side update lost too many commit races");
    });
  }

  /**
   * Finishes queued work, closes every socket (by default without a code, so clients reconnect;
   * shutdown passes 1012), removes the sessions' store entries and stops all timers.
   */
  async close(code?: number, reason?: string): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Pushes out at the writer are committed here (whatever the writer did is read first).
    this.#forwarding.close();
    await this.idle();
    this.#forwarding.closed(this.hasPeers);
    const close = (socket: RoomSocket) =>
      code === undefined ? safeClose(socket) : closeWith(socket, code, reason ?? "");
    for (const session of [...this.#sessions.values()]) {
      // Batched events (a push_result among them) go out before the close: an acknowledged push
      // must not be re-sent by a client that never saw its result.
      this.#sender.flush(session);
      close(session.socket);
      this.#removeSession(session, { broadcast: false });
    }
    for (const socket of [...this.#bySocket.keys()]) close(socket);
    this.#bySocket.clear();
    this.#stopTimers();
    await this.#saveSnapshot();
    while (this.#background.size > 0) await Promise.all([...this.#background]);
  }

  /** The next cold load of a big room reads a compacted copy instead of every record. */
  async #saveSnapshot(): Promise<void> {
    if (!this.#store.saveSnapshot || this.#cache.records.size < SNAPSHOT_MIN_RECORDS) return;
    try {
      await this.#store.saveSnapshot(this.roomId, this.#cache.clock, [
        ...this.#cache.records.values(),
      ]);
    } catch (error) {
      this.#log.warn("room snapshot failed", { error });
    }
  }

  /** `true` when no socket is attached (the room can be unloaded). */
  get empty(): boolean {
    return this.#sessions.size === 0 && this.#bySocket.size === 0 && this.#pending === 0;
  }

  /** Resolves when nothing is queued (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.#pending > 0) await this.#queue;
  }

  // ---------------------------------------------------------------------------------------------
  // Queue and timers

  /** Queues a task; its failure is logged (the queue goes on). */
  #enqueue(task: () => Promise<void> | void): Promise<void> {
    return this.#enqueueResult(task).catch((error) => {
      this.#log.error("room task failed", { error });
    });
  }

  /** Queues a task; the returned promise rejects if it fails (the queue goes on). */
  #enqueueResult(task: () => Promise<void> | void): Promise<void> {
    // Pushes after this task must not join a group queued before it.
    this.#openGroup = null;
    this.#pending++;
    const run = this.#queue.then(task);
    this.#queue = run.then(() => {}, () => {}).finally(() => this.#pending--);
    return run;
  }

  #startTimers(): void {
    this.#pruneTimer ??= setInterval(() => this.#prune(), this.#timeouts.prune);
    this.#heartbeatTimer ??= setInterval(() => this.#heartbeat(), this.#timeouts.heartbeat);
    if (this.#timeouts.poll > 0) {
      this.#pollTimer ??= setInterval(() => {
        if (this.#pending > 0) return;
        void this.catchUp();
        // Now and then: forget presence of sessions whose isolate stopped refreshing them.
        if (Date.now() - this.#lastPresenceSweep >= this.#timeouts.presenceSweep) {
          this.#lastPresenceSweep = Date.now();
          void this.#enqueue(() => this.#sweepRemotePresences());
        }
      }, this.#timeouts.poll);
    }
  }

  #stopTimers(): void {
    if (this.#pruneTimer !== null) clearInterval(this.#pruneTimer);
    if (this.#heartbeatTimer !== null) clearInterval(this.#heartbeatTimer);
    if (this.#pollTimer !== null) clearInterval(this.#pollTimer);
    this.#sender.stop();
    this.#pruneTimer = null;
    this.#heartbeatTimer = null;
    this.#pollTimer = null;
  }

  #prune(): void {
    const now = Date.now();
    for (const session of [...this.#sessions.values()]) {
      if (session.state === SessionState.awaiting_connect) {
        if (now - session.startedAt >= this.#timeouts.connect) {
          safeClose(session.socket);
          this.#removeSession(session);
        }
      } else if (session.state === SessionState.connected) {
        if (session.socket.readyState !== OPEN) this.#cancel(session);
        else if (now - session.lastInteraction >= this.#timeouts.idle) {
          this.#log.info("session idle", { sessionId: session.sessionId });
          safeClose(session.socket);
          this.#cancel(session);
        }
      }
    }
  }

  #heartbeat(): void {
    for (const session of this.#sessions.values()) {
      if (session.state === SessionState.awaiting_removal) continue;
      this.#track(this.#putSessionEntry(session));
    }
  }

  async #putSessionEntry(session: Session): Promise<void> {
    const now = Date.now();
    const record = session.presenceId ? this.#presences.get(session.presenceId) : undefined;
    await this.#store.putSession(this.roomId, {
      sessionId: session.sessionId,
      isolateId: this.#isolateId,
      userId: session.userId,
      lastSeen: now,
      expiresAt: now + this.#timeouts.sessionTtl,
      presence: record && session.presenceId
        ? { presenceId: session.presenceId, record }
        : undefined,
    }, this.#timeouts.sessionTtl);
  }

  /** Mirrors a presence change into the session entry, at most once per `presenceWrite`. */
  #schedulePresenceWrite(session: Session): void {
    if (session.presenceWriteTimer !== null) return;
    session.presenceWriteTimer = setTimeout(() => {
      session.presenceWriteTimer = null;
      if (session.state === SessionState.connected && !this.#closed) {
        this.#track(this.#putSessionEntry(session));
      }
    }, this.#timeouts.presenceWrite);
  }

  #track(promise: Promise<unknown>): void {
    const tracked = promise.catch((error) =>
      this.#log.warn("session entry write failed", { error })
    )
      .finally(() => this.#background.delete(tracked));
    this.#background.add(tracked);
  }

  #clearSessionTimers(session: Session): void {
    this.#sender.forget(session);
    if (session.removalTimer !== null) clearTimeout(session.removalTimer);
    if (session.presenceWriteTimer !== null) clearTimeout(session.presenceWriteTimer);
    session.removalTimer = null;
    session.presenceWriteTimer = null;
  }

  // ---------------------------------------------------------------------------------------------
  // Session lifecycle

  /** Socket gone: keep the presence for the removal grace period, then remove. */
  #cancel(session: Session): void {
    if (
      session.state === SessionState.awaiting_removal || session.state === SessionState.removed
    ) return;
    session.state = SessionState.awaiting_removal;
    this.#clearSessionTimers(session);
    session.outbox = [];
    session.removalTimer = setTimeout(() => {
      session.removalTimer = null;
      if (this.#sessions.get(session.sessionId) === session) this.#removeSession(session);
    }, this.#timeouts.removal);
  }

  #removeSession(session: Session, options: { broadcast?: boolean } = {}): void {
    if (session.state === SessionState.removed) return;
    session.state = SessionState.removed;
    session.resultSlots = [];
    this.#clearSessionTimers(session);
    this.#bySocket.delete(session.socket);
    if (this.#sessions.get(session.sessionId) !== session) return;
    this.#sessions.delete(session.sessionId);
    this.#track(this.#store.deleteSession(this.roomId, session.sessionId));
    if (session.presenceId && this.#presences.delete(session.presenceId)) {
      if (options.broadcast !== false) {
        this.#broadcast({ puts: {}, deletes: [session.presenceId] }, null);
      }
      this.#hooks.onPresenceChanged?.({
        roomId: this.roomId,
        sessionId: session.sessionId,
        presenceId: session.presenceId,
        record: null,
      });
    }
    if (this.#sessions.size === 0) this.#stopTimers();
    this.#hooks.onSessionRemoved?.({
      roomId: this.roomId,
      sessionId: session.sessionId,
      meta: session.meta,
      remaining: this.#sessions.size,
    });
  }

  /** Fatal error for one session: 4099 + reason (legacy clients: `incompatibility_error`). */
  #reject(session: Session, reason: SyncCloseReason): void {
    if (session.state === SessionState.removed) return;
    this.#log.info("session rejected", { sessionId: session.sessionId, reason });
    if (session.requiresLegacyRejection) {
      this.#sender.flush(session);
      this.#sender.sendNow(session, {
        type: "incompatibility_error",
        reason: legacyReasonFor(reason),
      });
      safeClose(session.socket);
    } else {
      closeWith(session.socket, SYNC_ERROR_CLOSE_CODE, reason);
    }
    if (this.#sessions.get(session.sessionId) === session) this.#removeSession(session);
    else {
      session.state = SessionState.removed;
      this.#bySocket.delete(session.socket);
    }
  }

  /** Sends a change to every connected session except `except`, migrated down where needed. */
  #broadcast(
    forward: ForwardDiff,
    except: Session | null,
    network?: WireNetworkDiff,
    options: { allowEmpty?: boolean } = {},
  ): void {
    let unmigrated = network;
    // One event object for every session that takes the unmigrated diff: serialized once.
    let shared: DataEvent | undefined;
    const legacyAppend = !this.#canEmitStringAppend();
    for (const session of [...this.#sessions.values()]) {
      if (session === except || session.state !== SessionState.connected) continue;
      if (session.socket.readyState !== OPEN) {
        this.#cancel(session);
        continue;
      }
      if (session.requiresDownMigrations) {
        const diff = this.#migrateDiffForSession(session, forward);
        if (!diff) continue; // session rejected
        if (Object.keys(diff).length === 0 && !options.allowEmpty) continue;
        this.#sender.sendData(session, { type: "patch", diff, serverClock: this.#cache.clock });
        continue;
      }
      const diff = unmigrated ??= toNetworkDiff(forward, legacyAppend);
      // A step of another isolate whose records all changed again later is empty, but it is still
      // sent: sessions see every clock, in order (invariant 2).
      if (Object.keys(diff).length === 0 && !options.allowEmpty) continue;
      this.#sender.sendData(
        session,
        shared ??= { type: "patch", diff, serverClock: this.#cache.clock },
      );
    }
  }

  /** `forward` for `session` (migrated down when it is older); rejects it if that fails. */
  #migrateDiffForSession(session: Session, forward: ForwardDiff): WireNetworkDiff | undefined {
    try {
      return this.#recordSchema.diffFor(
        forward,
        session.requiresDownMigrations ? session.schema : null,
        !this.#canEmitStringAppend(),
      );
    } catch (error) {
      if (error instanceof SessionRejection) {
        this.#reject(session, error.reason);
        return undefined;
      }
      throw error;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Connect

  async #handleConnect(session: Session, message: ConnectRequest): Promise<void> {
    if (
      session.state !== SessionState.awaiting_connect && session.state !== SessionState.connected
    ) {
      return;
    }
    let version = message.protocolVersion;
    if (version === 5) version = 6;
    session.requiresLegacyRejection = version === 6;
    if (version === 6) version = 7;
    if (version === 7) {
      version = 8;
      session.supportsStringAppend = false;
    }
    if (version === null || version === undefined || version < PROTOCOL_VERSION) {
      return this.#reject(session, CloseReason.CLIENT_TOO_OLD);
    }
    if (version > PROTOCOL_VERSION) return this.#reject(session, CloseReason.SERVER_TOO_OLD);
    if (!message.schema) return this.#reject(session, CloseReason.CLIENT_TOO_OLD);
    const theirSchema = message.schema as unknown as SerializedSchema;
    const migrations = this.#recordSchema.store.getMigrationsSince(theirSchema);
    if (!migrations.ok) {
      return this.#reject(session, this.#recordSchema.mismatchReason(theirSchema));
    }
    if (migrations.value.some((m) => m.scope !== "record" || !m.down)) {
      return this.#reject(session, CloseReason.CLIENT_TOO_OLD);
    }
    const sameSchema = isEqual(theirSchema, this.#recordSchema.serialized);
    session.schema = sameSchema ? this.#recordSchema.serialized : theirSchema;
    session.requiresDownMigrations = migrations.value.length > 0;

    // Other isolates may have committed since our last look: hydrate from the latest state.
    await this.#catchUpNow();
    if (
      session.state !== SessionState.awaiting_connect && session.state !== SessionState.connected
    ) {
      return;
    }

    const presencePuts: ForwardDiff = { puts: {}, deletes: [] };
    for (const [id, record] of this.#presences) {
      if (id !== session.presenceId) presencePuts.puts[id] = record;
    }
    for (const [id, { sessionId, record }] of this.#remotePresences) {
      if (sessionId !== session.sessionId) presencePuts.puts[id] = record;
    }
    const docChanges = this.#cache.changesSince(message.lastServerClock);
    const presenceDiff = this.#migrateDiffForSession(session, presencePuts);
    if (!presenceDiff) return;
    let docDiff: WireNetworkDiff = {};
    // Records go into the reply as their stored JSON (unparsed), unless they need migrating.
    let docPuts: readonly CachedRecord[] = [];
    if (docChanges && session.requiresDownMigrations) {
      const forward: ForwardDiff = { puts: {}, deletes: docChanges.deletes };
      for (const record of docChanges.puts) forward.puts[storedRecordId(record)] = record.state;
      const migrated = this.#migrateDiffForSession(session, forward);
      if (!migrated) return;
      docDiff = migrated;
    } else if (docChanges) {
      for (const id of docChanges.deletes) docDiff[id] = ["remove"];
      docPuts = docChanges.puts;
    }
    const reply: ConnectReply = {
      type: "connect",
      connectRequestId: message.connectRequestId,
      hydrationType: docChanges?.wipeAll ? "wipe_all" : "wipe_presence",
      protocolVersion: PROTOCOL_VERSION,
      schema: this.#recordSchema.wire,
      serverClock: this.#cache.clock,
      diff: { ...presenceDiff, ...docDiff },
      isReadonly: session.isReadonly,
    };
    session.state = SessionState.connected;
    session.lastInteraction = Date.now();
    this.#sender.flush(session);
    this.#sender.sendText(session, encodeConnectReply(reply, docPuts));
  }

  // ---------------------------------------------------------------------------------------------
  // Push

  /**
   * Handles queued pushes in arrival order, as groups (spec 5): every push of a group is planned
   * against the state left by the ones before it, the changing ones are committed with one store
   * write (one clock step each), then every push gets its push_result and the patches go out, in
   * order. A rejected push contributes nothing; a lost race re-plans the whole group.
   */
  async #handlePushes(entries: PushEntry[]): Promise<void> {
    const state = { remaining: entries };
    try {
      await this.#handlePushGroups(state);
    } catch (error) {
      // The store failed (KV unreachable): the pushes not answered yet close their sessions.
      for (const entry of state.remaining) {
        if (isRemote(entry) || entry.session.state !== SessionState.connected) continue;
        this.#log.error("push failed", { sessionId: entry.session.sessionId, error });
        this.#reject(entry.session, CloseReason.UNKNOWN_ERROR);
      }
    } finally {
      this.#sender.releaseUnless((this.#openGroup?.length ?? 0) > 0);
    }
  }

  async #handlePushGroups(state: { remaining: PushEntry[] }): Promise<void> {
    let remaining = state.remaining;
    let attempt = 1;
    let losingSince = 0;
    const replies = new ForwardReplies();
    try {
      while (remaining.length > 0) {
        remaining = state.remaining = remaining.filter((e) =>
          isRemote(e) || e.session.state === SessionState.connected
        );
        if (remaining.length === 0) return;
        if (this.#forwarding.active()) {
          // Another isolate is the room's writer: it commits the local pushes; forwarded ones go
          // back to their isolate (which then forwards them there, or commits them itself).
          this.#forwarding.forward(remaining.filter((e) => !isRemote(e)) as LocalPush[]);
          this.#forwarding.refuse(remaining.filter(isRemote));
          remaining = state.remaining = [];
          return;
        }
        const wait = this.#yieldUntil - Date.now();
        if (wait > 0) {
          this.#sender.release(); // nothing waits behind a pause
          await sleep(wait);
          await this.#catchUpNow();
          continue;
        }
        const { items, steps } = planGroup(this.#groupContext(), remaining, MAX_GROUP_PUSHES);
        if (steps.length > 0) {
          // Alone in the room: nobody reads the log's copies of the values now.
          if (!this.hasPeers) { for (const step of steps) step.logValues = false; }
          for (const step of steps) step.writer = this.#isolateId;
          const expected = this.#cache.clock;
          const result = await this.#store.commitSteps(this.roomId, expected, steps);
          if (!result.ok) {
            losingSince ||= Date.now();
            if (Date.now() - losingSince > COMMIT_RACE_BUDGET_MS) {
              // Not the clients' fault, so not a 4099 (which the client takes as fatal): close
              // without a code; they reconnect, catch up and push their pending changes again.
              // Forwarded pushes get no answer: their isolate gives up on them the same way.
              for (const { entry } of items) {
                if (isRemote(entry)) {
                  this.#forwarding.remoteDone(entry);
                  continue;
                }
                if (entry.session.state !== SessionState.connected) continue;
                this.#log.warn("push gave up after lost commit races", {
                  sessionId: entry.session.sessionId,
                  attempts: attempt,
                });
                safeClose(entry.session.socket);
                this.#cancel(entry.session);
              }
              remaining = state.remaining = remaining.slice(items.length);
              attempt = 1;
              losingSince = 0;
              continue;
            }
            // Another isolate committed first: take its changes, then re-plan against them. From
            // the second loss on, wait a random moment so that racing writers stop colliding.
            if (attempt >= 2) {
              this.#sender.release();
              this.#hooks.onContention?.({ roomId: this.roomId, clock: this.#cache.clock });
              await sleep(
                Math.random() * Math.min(RETRY_JITTER_MS * attempt, RETRY_JITTER_MAX_MS),
              );
            }
            attempt++;
            await this.#catchUpNow();
            continue;
          }
          this.#forwarding.committedHere();
          // The store committed as many steps as fit one write: the pushes after the first step
          // it left out are planned again, against what was committed.
          const committed = result.clock - expected;
          if (committed < steps.length) {
            const cut = items.findIndex((item) => item.clock === expected + committed + 1);
            items.length = cut;
            steps.length = committed;
          }
        }
        remaining = state.remaining = remaining.slice(items.length);
        attempt = 1;
        losingSince = 0;
        // After a commit, each session gets the group's events as one data frame (the batch
        // window is the commit), sent at once unless more pushes wait right behind (see
        // SessionSender.releaseUnless). Groups without a commit (presence) use the batch timer.
        if (steps.length > 0) this.#sender.hold();
        try {
          for (const item of items) this.#finishGroupItem(item, replies);
        } finally {
          this.#sender.releaseUnless(
            remaining.length > 0 || (this.#openGroup?.length ?? 0) > 0,
          );
        }
        if (steps.length > 0) {
          this.#hooks.onDocumentChanged?.({
            roomId: this.roomId,
            clock: this.#cache.clock,
            steps: committedSteps(items),
          });
          if (this.#cache.tombstones.size > this.#limits.maxTombstones) {
            void this.#enqueue(() => this.#pruneTombstones());
          }
        }
      }
    } finally {
      for (const message of replies.messages(this.#isolateId, this.#cache.clock)) {
        this.#hooks.onForward?.({ roomId: this.roomId, message });
      }
    }
  }

  /** What forwarding needs of the room (room_forwarding.ts). */
  #forwardingHost(): ForwardingHost {
    return {
      roomId: this.roomId,
      isolateId: this.#isolateId,
      log: this.#log,
      clock: () => this.#cache.clock,
      closed: () => this.#closed,
      canSend: () => this.#hooks.onForward !== undefined,
      send: (message) => this.#hooks.onForward?.({ roomId: this.roomId, message }),
      enqueue: (task) => this.#enqueue(task),
      catchUp: () => void this.catchUp(),
      catchUpNow: () => this.#catchUpNow(),
      submit: (entry) => this.#submit(entry),
      commitHere: (entries) => this.#handlePushes(entries),
      applyPresence: (session, message) => {
        try {
          const plan = this.#planPush(session, { ...message, diff: undefined });
          if (plan.presence) {
            this.#applyPresence(session, plan.presence.record);
            this.#broadcast(plan.presence.forward, session, plan.presence.diff);
          }
          return true;
        } catch (error) {
          if (!(error instanceof SessionRejection)) throw error;
          this.#reject(session, error.reason);
          return false;
        }
      },
      answer: (session, message, action, origin) =>
        this.#sender.answerPush(session, message, action, origin),
      reject: (session, reason) => this.#reject(session, reason),
      onFallback: (pushes) => this.#hooks.onForwardFallback?.({ roomId: this.roomId, pushes }),
    };
  }

  /** How a group sees the room and its queued pushes (push_group.ts). */
  #groupContext(): GroupContext<PushEntry> {
    return {
      schema: this.#recordSchema,
      records: this.#cache.records,
      presences: this.#presences,
      clock: this.#cache.clock,
      roomChars: this.#cache.roomChars,
      maxRoomBytes: this.#limits.maxRoomBytes,
      maxRecordChars: this.#limits.maxRecordChars,
      maxRecordIdChars: this.#limits.maxRecordIdChars,
      legacyAppend: !this.#canEmitStringAppend(),
      describe: (entry) => {
        if (isRemote(entry)) {
          return {
            message: entry.message,
            session: { isReadonly: false, presenceId: null, clientSchema: null },
            key: `${entry.remote.from}\0${entry.remote.session}`,
            origin: entry.origin,
          };
        }
        const { session } = entry;
        session.lastInteraction = Date.now();
        return {
          message: entry.message,
          session: {
            isReadonly: session.isReadonly,
            presenceId: session.presenceId,
            clientSchema: session.requiresDownMigrations ? session.schema : null,
          },
          key: session,
          origin: entry.origin,
        };
      },
      committedAt: (origin) => this.#forwarding.committedAt(origin),
      onError: (entry, error) => {
        const sessionId = isRemote(entry) ? entry.remote.session : entry.session.sessionId;
        this.#log.error("push failed", { sessionId, error });
      },
    };
  }

  /** After a group's commit (or without one): one push's outcome, in group order. */
  #finishGroupItem(item: GroupItem<PushEntry>, replies: ForwardReplies): void {
    const { entry } = item;
    if (isRemote(entry)) {
      const origin = entry.origin;
      this.#forwarding.remoteDone(entry, item.plan && item.clock);
      if (item.committedAt !== undefined) {
        replies.add(entry, { origin, committed: item.committedAt });
      } else if (item.rejection) replies.add(entry, { origin, rejected: item.rejection });
      else if (!item.plan) {
        // An earlier push of its session was rejected (which closes the session).
        replies.add(entry, { origin, rejected: CloseReason.UNKNOWN_ERROR });
      } else if (item.clock !== undefined) {
        this.#cache.applyCommitted(item.plan.changeSet, item.clock, item.sizes);
        replies.add(entry, { origin, committed: item.clock });
        this.#broadcast(item.plan.docForward, null, item.plan.docDiff);
      } else replies.add(entry, { origin, discarded: this.#cache.clock });
      return;
    }
    if (item.rejection) {
      this.#reject(entry.session, item.rejection);
      return;
    }
    if (!item.plan) return;
    if (item.clock !== undefined) {
      this.#cache.applyCommitted(item.plan.changeSet, item.clock, item.sizes);
    }
    if (entry.origin !== undefined) this.#forwarding.committedLocally(entry.origin, item.clock);
    this.#finishPush(entry.session, entry.message, item.plan, entry.origin);
  }

  /** Commits a plan; returns the new clock, or `undefined` after a lost race. */
  async #commitPlan(plan: PushPlan): Promise<number | undefined> {
    const result = await this.#store.commitSteps(this.roomId, this.#cache.clock, [
      plan.changeSet,
    ]);
    if (!result.ok) return undefined;
    this.#cache.applyCommitted(plan.changeSet, result.clock);
    this.#hooks.onDocumentChanged?.({ roomId: this.roomId, clock: result.clock });
    return result.clock;
  }

  /**
   * A local push's outcome: its presence, its push_result and the patch for the others. `origin`:
   * the push was forwarded before (its result has a slot, and its presence went out then).
   */
  #finishPush(session: Session, message: PushRequest, plan: PushPlan, origin?: string): void {
    if (plan.presence) this.#applyPresence(session, plan.presence.record);
    let action: PushResultAction;
    if (isEqual(plan.docDiff, message.diff)) action = "commit";
    else if (!plan.docDiff) action = "discard";
    else if (session.requiresDownMigrations) {
      const migrated = this.#migrateDiffForSession(session, plan.docForward);
      if (!migrated) return;
      action = { rebaseWithDiff: migrated };
    } else action = { rebaseWithDiff: plan.docDiff };
    this.#sender.answerPush(session, message, action, origin);
    if (plan.docDiff || plan.presence) {
      this.#broadcast(
        {
          puts: { ...plan.docForward.puts, ...plan.presence?.forward.puts },
          deletes: plan.docForward.deletes,
        },
        session,
        { ...plan.docDiff, ...plan.presence?.diff },
      );
    }
  }

  /** A session's new presence record: kept, mirrored into its entry, and told to other isolates. */
  #applyPresence(session: Session, record: WireRecord): void {
    if (!session.presenceId) return;
    this.#presences.set(session.presenceId, record);
    this.#schedulePresenceWrite(session);
    this.#hooks.onPresenceChanged?.({
      roomId: this.roomId,
      sessionId: session.sessionId,
      presenceId: session.presenceId,
      record,
    });
  }

  /** Evaluates a push against the cache (see push_plan.ts). `session` null = server-side. */
  #planPush(session: Session | null, message: PushRequest): PushPlan {
    return planPush(
      {
        schema: this.#recordSchema,
        records: this.#cache.records,
        presences: this.#presences,
        maxRecordChars: this.#limits.maxRecordChars,
        maxRecordIdChars: this.#limits.maxRecordIdChars,
        legacyAppend: !this.#canEmitStringAppend(),
      },
      session && {
        isReadonly: session.isReadonly,
        presenceId: session.presenceId,
        clientSchema: session.requiresDownMigrations ? session.schema : null,
      },
      message,
    );
  }

  /** Spec 7.3: drop the oldest tombstones (whole clock values) and move the history cutoff. */
  async #pruneTombstones(): Promise<void> {
    const excess = this.#cache.tombstones.size - this.#limits.maxTombstones;
    if (excess <= 0) return;
    const clocks = [...this.#cache.tombstones.values()].sort((a, b) => a - b);
    const drop = Math.min(clocks.length, excess + this.#limits.tombstonePruneBuffer);
    // Everything below the first kept clock goes; ties with the last dropped one go too.
    const lastDropped = clocks[drop - 1]!;
    const firstKept = clocks.find((c) => c > lastDropped);
    const startsAt = firstKept ?? this.#cache.clock;
    if (await this.#store.pruneTombstones(this.roomId, this.#cache.clock, startsAt)) {
      this.#cache.applyHistoryStart(startsAt);
    }
  }

  #canEmitStringAppend(): boolean {
    for (const session of this.#sessions.values()) {
      if (session.state === SessionState.connected && !session.supportsStringAppend) return false;
    }
    return true;
  }

  /** The cache becomes `data` (as loaded); what forwarding knows starts from its clock. */
  #replaceCache(data: RoomData): void {
    const clock = this.#cache.replace(data);
    // Origins of forwarded pushes are known from here on (see forwarding.ts).
    this.#forwarding.reset(clock, data.meta.writer);
  }

  /**
   * Reads what other isolates committed after this cache's clock and forwards it one clock at a
   * time, in order, each patch with its own serverClock (invariant 2).
   */
  async #catchUpNow(): Promise<void> {
    const result = await this.#store.stepsSince(this.roomId, this.#cache.clock);
    if (result.kind === "none") return;
    if (result.kind === "steps" && result.steps[0]?.clock === this.#cache.clock + 1) {
      if (result.writer) this.#forwarding.noteWriter(result.writer);
      for (const step of result.steps) this.#applyStep(step);
      this.#cache.applyHistoryStart(result.tombstoneHistoryStartsAtClock);
      this.#forwarding.pump();
      return;
    }
    await this.#reloadAfterGap();
  }

  /**
   * Applies one committed clock of another isolate to the cache and sends it as one patch; when it
   * is a push this isolate forwarded, its session gets the push_result instead.
   */
  #applyStep(step: LogStep): void {
    const forward = this.#cache.applyStep(step);
    const item = this.#forwarding.stepApplied(step);
    if (!item || item.session.state !== SessionState.connected) {
      this.#broadcast(forward, null, undefined, { allowEmpty: true });
      return;
    }
    this.#broadcast(forward, item.session, undefined, { allowEmpty: true });
    // The pusher's result: `commit` when the step is what it pushed (spec 5.1).
    const diff = this.#migrateDiffForSession(item.session, forward);
    if (!diff) return;
    const action: PushResultAction = isEqual(diff, item.diff) ? "commit" : { rebaseWithDiff: diff };
    this.#sender.settleSlot(item.session, item.origin, action);
  }

  /**
   * The log does not reach back to this cache's clock. If the tombstones do, the steps are rebuilt
   * from a reload (see catch_up.ts); otherwise no correct incremental patch exists, so the cache is
   * replaced and the sessions are closed without a code: clients reconnect with their
   * lastServerClock and get a hydrating connect reply (wipe_all if they are too far behind).
   */
  async #reloadAfterGap(): Promise<void> {
    const loaded = await this.#store.load(this.roomId);
    if (!loaded) return;
    const data = settledView(loaded);
    if (data.meta.documentClock <= this.#cache.clock) return;
    this.#forwarding.noteWriter(data.meta.writer);
    const rebuilt = stepsFromReload(data, this.#cache.clock);
    if (rebuilt.ok) {
      for (const step of rebuilt.steps) this.#applyStep(step);
      this.#cache.applyHistoryStart(data.meta.tombstoneHistoryStartsAtClock);
      this.#forgetOrigins();
      return;
    }
    this.#log.info("catch-up gap: sessions re-hydrate", {
      from: this.#cache.clock,
      to: data.meta.documentClock,
      why: rebuilt.error,
    });
    this.#replaceCache(data);
    this.#forgetOrigins();
    for (const session of [...this.#sessions.values()]) {
      if (session.state !== SessionState.connected) continue;
      safeClose(session.socket);
      this.#cancel(session);
    }
  }

  /** Steps were skipped: sessions waiting for a forwarded push reconnect (see RoomForwarding). */
  #forgetOrigins(): void {
    for (const session of this.#forwarding.forget(this.#cache.clock)) {
      if (session.state !== SessionState.connected) continue;
      safeClose(session.socket);
      this.#cancel(session);
    }
  }

  /** Stored records older than the server schema are migrated up once, as one commit. */
  async #migrateStoredRecords(stored: WireSchema | null): Promise<void> {
    if (!stored || isEqual(stored, this.#recordSchema.serialized)) return;
    const schema = stored as unknown as SerializedSchema;
    const migrations = this.#recordSchema.store.getMigrationsSince(schema);
    if (!migrations.ok || migrations.value.length === 0) return;
    const changeSet: ChangeSet = {
      puts: [],
      deletes: [],
      schema: this.#recordSchema.wire,
    };
    for (const cached of this.#cache.records.values()) {
      const result = this.#recordSchema.store.migratePersistedRecord(
        cached.state as unknown as UnknownRecord,
        schema,
        "up",
      );
      if (result.type === "error") {
        this.#log.error("stored record migration failed", { id: cached.state.id });
        continue;
      }
      const next = result.value as unknown as WireRecord;
      if (!isEqual(next, cached.state)) changeSet.puts.push({ record: next, prev: cached });
    }
    const result = await this.#store.commitSteps(this.roomId, this.#cache.clock, [changeSet]);
    if (result.ok) {
      this.#cache.clock = result.clock;
      for (const { record } of changeSet.puts) this.#cache.set(record, result.clock);
    } else {
      await this.#catchUpNow();
    }
  }
}

/** The steps a group committed, as another isolate reads them from the log. */
function committedSteps(items: readonly GroupItem<PushEntry>[]): LogStep[] {
  const steps: LogStep[] = [];
  for (const { plan, clock } of items) {
    if (!plan || clock === undefined) continue;
    const { puts, deletes, origin } = plan.changeSet;
    steps.push({
      clock,
      puts: puts.map(({ record }) => ({ state: record, lastChangedClock: clock })),
      deletes: deletes.map(({ id }) => id),
      ...(origin === undefined ? {} : { origin }),
    });
  }
  return steps;
}

let tldrawSchema: StoreSchema<UnknownRecord, unknown> | undefined;

/** tldraw's default schema, built once per process. */
function defaultSchema(): StoreSchema<UnknownRecord, unknown> {
  return tldrawSchema ??= createTLSchema() as unknown as StoreSchema<UnknownRecord, unknown>;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Whether some push of `group` changes the document (and so will commit). */
function changesDocument(group: readonly PushEntry[]): boolean {
  for (const entry of group) {
    const diff = entry.message.diff;
    if (diff) { for (const _ in diff) return true; }
  }
  return false;
}

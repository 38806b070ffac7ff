/**
 * Presence in a room: the cursors and selections of its sessions, which never touch the document
 * or its clock. Local presence is kept here, mirrored into the sessions' entries in the store's
 * session directory (so that a session joining on another isolate sees it, and so that it vanishes
 * with the entry when its isolate dies) and published on the room's link; presence of sessions on
 * other isolates arrives on the link or is read from their entries. Also here: the entries
 * themselves (written on admission, refreshed by a heartbeat), and whether other isolates share the
 * room at all ({@link Peers}).
 *
 * @module
 */
import type { Logger } from "../../log.ts";
import type { ForwardDiff } from "./push_plan.ts";
import type { WireRecord } from "./protocol.ts";
import type { PresenceChange, RoomLink } from "./room_link.ts";
import { ALONE_SLOWDOWN, type RoomTimeouts } from "./room_options.ts";
import type { SessionDirectory, SessionEntry } from "./room_store.ts";
import { isConnected, type Session } from "./session.ts";

/**
 * Whether another isolate may have sessions in the room: one of its session entries was seen (on
 * admission, or by the sweep every few seconds) or one of its messages arrived, within the last
 * `memoryMs` (`RoomTimeouts.peerMemory`). While alone, nothing needs to go on the link: an isolate
 * that joins later reads the session entries and the store's log, and its own first message or
 * entry makes this one publish again.
 */
export class Peers {
  readonly #onFound: () => void;
  readonly #memoryMs: number;
  readonly #settledAt: number;
  #seenAt = -Infinity;

  /**
   * `settleMs`: how long after loading the room cannot know it is alone (two presence sweeps).
   * `onFound`: this isolate thought it was alone in the room and learned it is not.
   */
  constructor(memoryMs: number, settleMs: number, onFound: () => void) {
    this.#memoryMs = memoryMs;
    this.#settledAt = Date.now() + settleMs;
    this.#onFound = onFound;
  }

  get present(): boolean {
    return Date.now() - this.#seenAt < this.#memoryMs;
  }

  /**
   * Whether the room may repair at the slow rate ({@link ALONE_SLOWDOWN}): alone, and loaded long
   * enough ago that its sweeps would have found another isolate (its first admission may have
   * raced another isolate's, whose messages may be lost).
   */
  get quiet(): boolean {
    return !this.present && Date.now() >= this.#settledAt;
  }

  /** Another isolate showed a sign of being in the room. */
  seen(): void {
    const wasAlone = !this.present;
    this.#seenAt = Date.now();
    if (wasAlone) this.#onFound();
  }
}

/** Where presence reports (implemented by the sessions, room_sessions.ts). */
export interface PresenceSink {
  /** Presence changed (another isolate's session, or a local one that left): sessions get it. */
  presenceChanged(forward: ForwardDiff): void;
  /** Whether `sessionId` is served by this isolate. */
  hasSession(sessionId: string): boolean;
}

/** Options for {@link RoomPresence}. */
export interface PresenceOptions {
  roomId: string;
  isolateId: string;
  directory: SessionDirectory;
  timeouts: RoomTimeouts;
  log: Logger;
  peers: Peers;
  link?: RoomLink | undefined;
}

/** The presence of one room on this isolate. */
export class RoomPresence {
  readonly #options: PresenceOptions;
  readonly #local = new Map<string, WireRecord>();
  /** The session of each local presence id. */
  readonly #owners = new Map<string, string>();
  /** Presence of sessions served by other isolates, by presence id. */
  readonly #remote = new Map<string, { sessionId: string; record: WireRecord }>();
  /** Local sessions whose entries the heartbeat refreshes. */
  readonly #entries = new Map<string, Session>();
  /** Pending entry writes after a presence change (throttled), by session id. */
  readonly #writeTimers = new Map<string, ReturnType<typeof setTimeout>>();
  /** Store writes not awaited by anyone; awaited by {@link flush}. */
  readonly #background = new Set<Promise<unknown>>();
  #sink: PresenceSink = { presenceChanged: () => {}, hasSession: () => false };
  #heartbeatTimer: ReturnType<typeof setInterval> | null = null;
  #sweepTimer: ReturnType<typeof setInterval> | null = null;
  #lastSweep = 0;
  #closed = false;

  constructor(options: PresenceOptions) {
    this.#options = options;
  }

  /** Where presence reports from now on (set once, by the room). */
  reportTo(sink: PresenceSink): void {
    this.#sink = sink;
  }

  /** Local presence records by presence id (pushes are planned against them). */
  get local(): ReadonlyMap<string, WireRecord> {
    return this.#local;
  }

  /**
   * Before admitting `sessionId`: the live entries of the room tell whether other isolates are in
   * it and what presence they have. Returns how many other sessions the room has.
   */
  async admit(sessionId: string): Promise<number> {
    const entries = await this.#options.directory.listSessions(this.#options.roomId);
    this.#notePeerEntries(entries);
    this.#learn(entries, sessionId);
    return entries.filter((entry) => entry.sessionId !== sessionId).length;
  }

  /** `session` was admitted: its entry is written (awaited) and refreshed from now on. */
  async enter(session: Session): Promise<void> {
    await this.#writeEntry(session);
    this.#entries.set(session.sessionId, session);
  }

  /** `session`'s socket went away: its entry is no longer refreshed (it expires, or is removed). */
  leave(session: Session): void {
    if (this.#entries.get(session.sessionId) === session) this.#entries.delete(session.sessionId);
    const timer = this.#writeTimers.get(session.sessionId);
    if (timer !== undefined) clearTimeout(timer);
    this.#writeTimers.delete(session.sessionId);
  }

  /** `session` was admitted but left before it entered (its entry write raced the close). */
  abandon(sessionId: string): void {
    this.#track(this.#options.directory.deleteSession(this.#options.roomId, sessionId));
  }

  /**
   * `session` is gone: its entry is deleted and its presence removed (sent to the sessions unless
   * `broadcast` is false, e.g. when the whole room closes).
   */
  remove(session: Session, broadcast = true): void {
    this.leave(session);
    this.abandon(session.sessionId);
    const presenceId = session.presenceId;
    if (!presenceId || !this.#local.delete(presenceId)) return;
    this.#owners.delete(presenceId);
    if (broadcast) this.#sink.presenceChanged({ puts: {}, deletes: [presenceId] });
    this.#publish({ sessionId: session.sessionId, presenceId, record: null });
  }

  /** A local session's presence changed: kept, mirrored into its entry, told to other isolates. */
  set(session: Session, record: WireRecord): void {
    const presenceId = session.presenceId;
    if (!presenceId) return;
    this.#local.set(presenceId, record);
    this.#owners.set(presenceId, session.sessionId);
    this.#scheduleWrite(session);
    this.#publish({ sessionId: session.sessionId, presenceId, record });
  }

  /** Every presence but `session`'s own, for its connect reply. */
  othersFor(session: Session): ForwardDiff {
    const others: ForwardDiff = { puts: {}, deletes: [] };
    for (const [id, record] of this.#local) {
      if (id !== session.presenceId) others.puts[id] = record;
    }
    for (const [id, { sessionId, record }] of this.#remote) {
      if (sessionId !== session.sessionId) others.puts[id] = record;
    }
    return others;
  }

  /**
   * Presence of a session on another isolate (from the link): sent to the local sessions and
   * included in connect replies. Sessions whose entry expired (crashed isolate) are dropped by the
   * sweep.
   */
  applyRemote(change: PresenceChange): void {
    if (this.#closed) return;
    const prev = this.#remote.get(change.presenceId);
    // A session that moved here from another isolate has its own (local) presence now.
    if (change.record && this.#sink.hasSession(change.sessionId)) return;
    if (change.record) {
      const record = { ...change.record, id: change.presenceId };
      this.#remote.set(change.presenceId, { sessionId: change.sessionId, record });
      this.#sink.presenceChanged({
        puts: { [change.presenceId]: prev ? [prev.record, record] : record },
        deletes: [],
      });
    } else if (prev) {
      this.#remote.delete(change.presenceId);
      this.#sink.presenceChanged({ puts: {}, deletes: [change.presenceId] });
    }
  }

  /**
   * Another isolate just learned of this one: it may hold a stale copy of local presence (from the
   * session entries), so the latest goes out again.
   */
  republish(): void {
    for (const [presenceId, record] of this.#local) {
      const sessionId = this.#owners.get(presenceId);
      if (sessionId !== undefined) this.#publish({ sessionId, presenceId, record });
    }
  }

  /** The room is in use: entries are refreshed and the presence of vanished isolates swept. */
  start(): void {
    const { heartbeat, poll } = this.#options.timeouts;
    this.#heartbeatTimer ??= setInterval(() => this.#heartbeat(), heartbeat);
    if (poll > 0) this.#sweepTimer ??= setInterval(() => this.#maybeSweep(), poll);
  }

  stop(): void {
    if (this.#heartbeatTimer !== null) clearInterval(this.#heartbeatTimer);
    if (this.#sweepTimer !== null) clearInterval(this.#sweepTimer);
    this.#heartbeatTimer = null;
    this.#sweepTimer = null;
  }

  /** The room closed: timers stop and the entry writes in flight finish. */
  async close(): Promise<void> {
    this.#closed = true;
    this.stop();
    for (const timer of this.#writeTimers.values()) clearTimeout(timer);
    this.#writeTimers.clear();
    while (this.#background.size > 0) await Promise.all([...this.#background]);
  }

  #publish(change: PresenceChange): void {
    // Alone in the room: nobody would read it (the session entries carry presence for isolates
    // that join later).
    if (!this.#options.peers.present) return;
    this.#options.link?.publish({ kind: "presence", change });
  }

  #heartbeat(): void {
    for (const session of this.#entries.values()) this.#track(this.#writeEntry(session));
  }

  /** Mirrors a presence change into the session entry, at most once per `presenceWrite`. */
  #scheduleWrite(session: Session): void {
    if (this.#writeTimers.has(session.sessionId)) return;
    this.#writeTimers.set(
      session.sessionId,
      setTimeout(() => {
        this.#writeTimers.delete(session.sessionId);
        if (isConnected(session) && !this.#closed) this.#track(this.#writeEntry(session));
      }, this.#options.timeouts.presenceWrite),
    );
  }

  #writeEntry(session: Session): Promise<void> {
    const { roomId, isolateId, timeouts, directory } = this.#options;
    const now = Date.now();
    const presenceId = session.presenceId;
    const record = presenceId ? this.#local.get(presenceId) : undefined;
    return directory.putSession(roomId, {
      sessionId: session.sessionId,
      isolateId,
      userId: session.userId,
      lastSeen: now,
      expiresAt: now + timeouts.sessionTtl,
      presence: record && presenceId ? { presenceId, record } : undefined,
    }, timeouts.sessionTtl);
  }

  #track(promise: Promise<unknown>): void {
    const tracked = promise
      .catch((error) => this.#options.log.warn("session entry write failed", { error }))
      .finally(() => this.#background.delete(tracked));
    this.#background.add(tracked);
  }

  #maybeSweep(): void {
    const alone = this.#options.peers.quiet && this.#remote.size === 0;
    const interval = this.#options.timeouts.presenceSweep * (alone ? ALONE_SLOWDOWN : 1);
    if (Date.now() - this.#lastSweep < interval) return;
    this.#lastSweep = Date.now();
    this.#sweep().catch((error) => this.#options.log.warn("presence sweep failed", { error }));
  }

  /** Forgets presence of sessions whose isolate stopped refreshing their entries. */
  async #sweep(): Promise<void> {
    const entries = await this.#options.directory.listSessions(this.#options.roomId);
    if (this.#closed) return;
    this.#notePeerEntries(entries);
    this.#learn(entries);
    if (this.#remote.size === 0) return;
    const live = new Set(entries.map((e) => e.sessionId));
    const gone: string[] = [];
    for (const [id, { sessionId }] of this.#remote) {
      if (!live.has(sessionId) || this.#sink.hasSession(sessionId)) gone.push(id);
    }
    for (const id of gone) this.#remote.delete(id);
    if (gone.length > 0) this.#sink.presenceChanged({ puts: {}, deletes: gone });
  }

  #notePeerEntries(entries: readonly SessionEntry[]): void {
    const isolateId = this.#options.isolateId;
    if (entries.some((entry) => entry.isolateId !== isolateId)) this.#options.peers.seen();
  }

  /**
   * Presence mirrored in other isolates' session entries that this isolate has not heard of on the
   * link (it joined later, or the message was lost). Known presence is not overwritten: the link
   * is newer than an entry written up to {@link RoomTimeouts.presenceWrite} ago.
   */
  #learn(entries: readonly SessionEntry[], joining?: string): void {
    for (const entry of entries) {
      if (!entry.presence || entry.isolateId === this.#options.isolateId) continue;
      // A session that moved here: its old entry is about to be replaced.
      if (entry.sessionId === joining || this.#sink.hasSession(entry.sessionId)) continue;
      if (this.#remote.has(entry.presence.presenceId)) continue;
      this.applyRemote({
        sessionId: entry.sessionId,
        presenceId: entry.presence.presenceId,
        record: entry.presence.record,
      });
    }
  }
}

/**
 * One tldraw room served by this isolate: a thin front over its three parts (sync/tldraw/README.md
 * has the map).
 *
 * * the document (room_document.ts): a cache of the store, which is the sequencer and source of
 *   truth; pushes are planned and committed there, in groups, and other isolates' commits applied;
 * * the sessions (room_sessions.ts): sockets, the handshake, answers and patches;
 * * presence (room_presence.ts): cursors, session entries, and whether other isolates are here.
 *
 * Messages from the room's other isolates arrive through {@link TldrawRoom.receive}; the room
 * reaches them through its {@link RoomLink}.
 *
 * Validation and migrations come from the tldraw schema (`@tldraw/store` `StoreSchema`); the diff
 * algebra from `@tldraw/sync-core`, so behaviour matches the reference (spec sections 3–6).
 *
 * @module
 */
import type { StoreSchema, UnknownRecord } from "@tldraw/store";
import { createTLSchema } from "@tldraw/tlschema";
import { type Logger, silentLogger } from "../../log.ts";
import type { SyncCloseReason, WireRecord, WireSchema } from "./protocol.ts";
import { RecordSchema } from "./push_plan.ts";
import { storedRecordJson } from "./record_json.ts";
import { RoomDocument } from "./room_document.ts";
import type { LinkMessage, RoomLink } from "./room_link.ts";
import {
  DEFAULT_LIMITS,
  DEFAULT_TIMEOUTS,
  newIsolateId,
  type RoomHooks,
  type RoomLimits,
  type RoomTimeouts,
} from "./room_options.ts";
import { Peers, RoomPresence } from "./room_presence.ts";
import { type AttachOptions, RoomSessions } from "./room_sessions.ts";
import type { RoomStore } from "./room_store.ts";
import { type RoomSocket, safeClose, type SessionState } from "./session.ts";

export type { RoomSocket } from "./session.ts";
export type { AttachOptions } from "./room_sessions.ts";
export type { RoomHooks, RoomLimits, RoomTimeouts } from "./room_options.ts";
export type { LinkMessage, PresenceChange, RoomLink } from "./room_link.ts";

/** Options for {@link TldrawRoom.load}. */
export interface RoomOptions {
  roomId: string;
  store: RoomStore;
  /** Record schema; default `createTLSchema()`. */
  schema?: StoreSchema<UnknownRecord, unknown>;
  log?: Logger;
  /** Identifies this isolate in session entries and on the link. */
  isolateId?: string;
  limits?: Partial<RoomLimits>;
  timeouts?: Partial<RoomTimeouts>;
  hooks?: RoomHooks;
  /**
   * The room's other isolates (the manager builds it from the bus). Without it the room never
   * forwards pushes and announces nothing: other isolates learn of its commits by polling.
   */
  link?: RoomLink;
}

// How long a room holds its commits back when another isolate reports contention (ms).
const CONTENTION_YIELD_MS = 25;

/** One tldraw room served by this isolate. Create with {@link TldrawRoom.load}. */
export class TldrawRoom {
  readonly roomId: string;
  readonly #schema: RecordSchema;
  readonly #link: RoomLink | undefined;
  readonly #peers: Peers;
  readonly #presence: RoomPresence;
  readonly #document: RoomDocument;
  readonly #sessions: RoomSessions;
  #closed = false;

  private constructor(options: RoomOptions) {
    this.roomId = options.roomId;
    const schema = this.#schema = RecordSchema.for(options.schema ?? defaultSchema());
    const log = (options.log ?? silentLogger).child({ roomId: options.roomId });
    const isolateId = options.isolateId ?? newIsolateId();
    const limits = { ...DEFAULT_LIMITS, ...options.limits };
    const timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
    const hooks = options.hooks ?? {};
    const link = this.#link = options.link;
    this.#peers = new Peers(
      timeouts.peerMemory,
      2 * timeouts.presenceSweep,
      () => this.#peerFound(),
    );
    this.#presence = new RoomPresence({
      roomId: this.roomId,
      isolateId,
      directory: options.store,
      timeouts,
      log,
      peers: this.#peers,
      link,
    });
    this.#document = new RoomDocument({
      roomId: this.roomId,
      store: options.store,
      schema,
      limits,
      log,
      isolateId,
      pollMs: timeouts.poll,
      presences: this.#presence.local,
      peers: this.#peers,
      link,
      hooks,
    });
    this.#sessions = new RoomSessions({
      roomId: this.roomId,
      schema,
      limits,
      timeouts,
      log,
      hooks,
      document: this.#document,
      presence: this.#presence,
    });
    this.#document.reportTo(this.#sessions);
    this.#presence.reportTo(this.#sessions);
  }

  /** Loads (or creates, with tldraw's default document and page) a room from the store. */
  static async load(options: RoomOptions): Promise<TldrawRoom> {
    const room = new TldrawRoom(options);
    await room.#document.load();
    return room;
  }

  /** Current document clock of this isolate's cache. */
  get clock(): number {
    return this.#document.clock;
  }

  /** Sessions in this isolate (any state but removed). */
  get sessionCount(): number {
    return this.#sessions.size;
  }

  /** `true` after {@link close}. */
  get closed(): boolean {
    return this.#closed;
  }

  /** `true` when no socket is attached and nothing is queued (the room can be unloaded). */
  get empty(): boolean {
    return this.#sessions.empty && this.#document.pending === 0;
  }

  /** A deep copy of a document record, or `undefined`. */
  getRecord(id: string): WireRecord | undefined {
    const record = this.#document.records.get(id);
    return record ? structuredClone(record.state) : undefined;
  }

  /** Document records (copies), e.g. for snapshots. */
  getRecords(): WireRecord[] {
    return [...this.#document.records.values()].map((r) => structuredClone(r.state));
  }

  /**
   * The document at {@link clock}, for copies (history versions): the records as their JSON texts,
   * from the cache (records loaded from the store are not parsed for it), looked up as the copy is
   * encoded (a chunk per macrotask turn, see gzip.ts): only the list of records is taken now.
   */
  documentText(): { clock: number; schema: WireSchema; recordTexts: Iterable<string> } {
    const records = [...this.#document.records.values()];
    return {
      clock: this.#document.clock,
      schema: this.#schema.wire,
      recordTexts: {
        *[Symbol.iterator]() {
          for (const record of records) yield storedRecordJson(record);
        },
      },
    };
  }

  /** Current presence records of this isolate's sessions. */
  getPresences(): WireRecord[] {
    return [...this.#presence.local.values()].map((p) => structuredClone(p));
  }

  /** Summary of the sessions (for the host and tests). */
  getSessions(): { sessionId: string; state: SessionState; isReadonly: boolean; meta: unknown }[] {
    return this.#sessions.list();
  }

  /**
   * Registers a socket whose `open` event has fired. The room-wide session limit is checked against
   * the store first (ROOM_FULL); frames that arrive meanwhile are handled afterwards, in order.
   */
  attach(socket: RoomSocket, options: AttachOptions): void {
    if (this.#closed) return safeClose(socket);
    this.#sessions.attach(socket, options);
  }

  /** Feeds one frame from a socket (text, or bytes decoded as UTF-8). */
  handleMessage(socket: RoomSocket, data: string | ArrayBuffer | Uint8Array): void {
    this.#sessions.handleMessage(socket, data);
  }

  /** The socket closed or errored. Ignored for sockets that were replaced by a reconnect. */
  handleClose(socket: RoomSocket): void {
    this.#sessions.handleClose(socket);
  }

  /** Closes a session, with 4099 + `reason` when given (kick), else a plain close (reconnect). */
  closeSession(sessionId: string, reason?: SyncCloseReason): void {
    this.#sessions.close(sessionId, reason);
  }

  /** Sends an application message to one connected session. */
  sendCustomMessage(sessionId: string, data: unknown): void {
    this.#sessions.sendCustom(sessionId, data);
  }

  /**
   * Reads changes other isolates committed after this cache's clock and forwards them to the local
   * sessions (or re-hydrates everyone when the log no longer reaches back).
   */
  catchUp(): Promise<void> {
    return this.#document.catchUp();
  }

  /**
   * A server-side edit (restore, rename, …): `update` receives a copy of the document records and
   * returns the records to put and ids to remove. Validated, committed and broadcast like a push.
   */
  updateDocument(
    update: (records: WireRecord[]) => { puts?: WireRecord[]; removes?: string[] },
  ): Promise<void> {
    return this.#document.update(update);
  }

  /** A message from another isolate of this room (from its link). */
  receive(message: LinkMessage): void {
    if (this.#closed) return;
    // Any message says another isolate is here.
    this.#peers.seen();
    const document = this.#document;
    switch (message.kind) {
      case "commit":
        return document.noticeClock(message.clock, message);
      case "hello":
        return document.noticeClock(message.clock);
      case "contention":
        // Another isolate lost commit races here twice or more in a row: give it a turn.
        document.yieldCommits(CONTENTION_YIELD_MS);
        return document.noticeClock(message.clock);
      case "presence":
        return this.#presence.applyRemote(message.change);
      case "forward":
        return document.receiveForward(message.message);
      default:
        return message satisfies never;
    }
  }

  /**
   * This isolate thought it was alone in the room and learned of another: its commits were not
   * announced (a hello tells the clock) and its sessions' latest presence not published (the
   * newcomer may hold a stale copy from the session entries).
   */
  #peerFound(): void {
    if (this.#closed) return;
    this.#link?.publish({ kind: "hello", clock: this.#document.clock });
    this.#presence.republish();
  }

  /** Resolves when nothing is queued (tests, shutdown). */
  idle(): Promise<void> {
    return this.#document.idle();
  }

  /**
   * Finishes queued work, closes every socket (by default without a code, so clients reconnect;
   * shutdown passes 1012), removes the sessions' store entries and stops all timers.
   */
  async close(code?: number, reason?: string): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#document.close();
    this.#sessions.closeAll(code, reason);
    await this.#document.saveSnapshot();
    await this.#presence.close();
  }
}

let tldrawSchema: StoreSchema<UnknownRecord, unknown> | undefined;

/** tldraw's default schema, built once per process. */
function defaultSchema(): StoreSchema<UnknownRecord, unknown> {
  return tldrawSchema ??= createTLSchema() as unknown as StoreSchema<UnknownRecord, unknown>;
}

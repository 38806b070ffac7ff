/**
 * What the parts of a room's document share (room_document.ts owns it): the cache of the store,
 * the origins of forwarded pushes seen committed, the room's writer as last learned, and where the
 * document reports. The group commit (group_commit.ts) and the catch-up (document_catch_up.ts)
 * work on it; neither talks to sockets.
 *
 * @module
 */
import type { Logger } from "../../log.ts";
import type { ForwardSender } from "./forward_sender.ts";
import type { ForwardTaker } from "./forward_taker.ts";
import { OriginIndex } from "./forwarding.ts";
import type { ForwardDiff, RecordSchema } from "./push_plan.ts";
import type { WireNetworkDiff, WireRecord } from "./protocol.ts";
import { RoomCache } from "./room_cache.ts";
import type { RoomLink } from "./room_link.ts";
import type { RoomHooks, RoomLimits } from "./room_options.ts";
import type { DocumentStore, LogStep, RoomData, RoomWriter } from "./room_store.ts";

/** A change of the document for the sessions (not a local session's own push). */
export interface DocumentChange {
  forward: ForwardDiff;
  /** `forward` as a NetworkDiff for clients on the server's schema, when already computed. */
  diff?: WireNetworkDiff | undefined;
  /** A step of another isolate: sent even when empty (sessions see every clock, invariant 2). */
  step?: boolean;
}

/** Where the document reports (implemented by the sessions, room_sessions.ts). */
export interface DocumentSink {
  /** Some connected client cannot apply string appends (protocol < 8). */
  readonly legacyAppend: boolean;
  /** The document changed by something else than a local push: every session gets `change`. */
  changed(change: DocumentChange): void;
  /** The cache was replaced after a gap in the log: every connected client must re-hydrate. */
  replaced(): void;
  /** A committed group is being settled: data events wait, to go out as one frame per session. */
  holdFrames(): void;
  /** Settling ended: every session gets the events that waited as one frame. */
  releaseFrames(): void;
}

/** Options for a room's document. */
export interface DocumentOptions {
  roomId: string;
  store: DocumentStore;
  schema: RecordSchema;
  limits: RoomLimits;
  log: Logger;
  isolateId: string;
  /** How often the store's clock is checked while the room is in use (0: never). */
  pollMs: number;
  /** The presence records of local sessions, by presence id (pushes are planned against them). */
  presences: ReadonlyMap<string, WireRecord>;
  /**
   * Whether another isolate may be in the room (commits are announced on the link), and whether
   * the room may repair at the slow rate.
   */
  peers: { readonly present: boolean; readonly quiet: boolean };
  /** The room's other isolates; without it the document never forwards. */
  link?: RoomLink | undefined;
  hooks?: Pick<RoomHooks, "onDocumentChanged" | "onForwardFallback">;
}

const NO_SINK: DocumentSink = {
  legacyAppend: false,
  changed: () => {},
  replaced: () => {},
  holdFrames: () => {},
  releaseFrames: () => {},
};

/** The shared state of one room's document. */
export class DocumentCore {
  readonly options: DocumentOptions;
  readonly cache = new RoomCache();
  /** Origins of the forwarded pushes committed at each clock since the load (forwarding.ts). */
  readonly origins = new OriginIndex(0);
  /** The two sides of forwarding (only with a link). */
  sender: ForwardSender | undefined;
  taker: ForwardTaker | undefined;
  /** The isolate that committed last (from the store), to which pushes are forwarded. */
  writer: RoomWriter | undefined;
  sink: DocumentSink = NO_SINK;
  /** Set when the room closes: notices are ignored, pushes no longer go to the writer. */
  closing = false;
  /**
   * When the store last showed that nothing was committed elsewhere after this cache's clock (epoch
   * ms): a commit of ours landed (it is checked against the room's clock, or against the lease when
   * pipelined), a catch-up read the log, or another isolate's commit notice was applied in order.
   * The clock poll skips a turn after one.
   */
  confirmedAt = 0;

  constructor(options: DocumentOptions) {
    this.options = options;
  }

  get roomId(): string {
    return this.options.roomId;
  }

  get store(): DocumentStore {
    return this.options.store;
  }

  get log(): Logger {
    return this.options.log;
  }

  /** This isolate's commit landed: it is the room's writer, and its cache was current. */
  committedHere(): void {
    const now = Date.now();
    this.writer = { isolateId: this.options.isolateId, at: now };
    this.confirmedAt = now;
  }

  /** The cache becomes `data` (as loaded); origins are known from its clock on. */
  replaceCache(data: RoomData): void {
    const clock = this.cache.replace(data);
    this.writer = data.meta.writer;
    this.origins.reset(clock);
  }

  /** This isolate committed up to `clock`: the hook, and a notice for the room's other isolates. */
  announce(clock: number, steps?: LogStep[]): void {
    const { hooks, peers, link, isolateId } = this.options;
    hooks?.onDocumentChanged?.({ roomId: this.roomId, clock, ...(steps ? { steps } : {}) });
    // Alone in the room: an isolate that joins later loads from the store and polls the clock.
    if (!peers.present) return;
    link?.publish({ kind: "commit", clock, writer: isolateId, ...(steps ? { steps } : {}) });
  }
}

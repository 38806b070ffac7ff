/**
 * The storage interface behind LiveStore sync: a per-store append-only event log with a head and a durable
 * `backendId`. Appends are serialised per store by the implementation (across processes, not just inside
 * one), so the engine only states what it expects the head to be.
 *
 * @module
 */

/** One stored event of a store's global log. */
export interface StoredEvent {
  seqNum: number;
  parentSeqNum: number;
  name: string;
  /** The args as JSON text, or `null` when the client sent none. Kept as text: it is only relayed. */
  argsJson: string | null;
  clientId: string;
  sessionId: string;
  /** Epoch milliseconds of the push that appended it. */
  createdAt: number;
}

/** An event to append (its `createdAt` is given per append). */
export type NewEvent = Omit<StoredEvent, "createdAt">;

/** A store's identity and position. */
export interface StoreContext {
  storeId: string;
  /** Created with the store; never changes while the log exists. */
  backendId: string;
  /** seqNum of the last event; 0 for an empty log. */
  head: number;
}

/** The result of {@link EventStore.append}. */
export type AppendResult =
  | { ok: true; head: number; createdAt: number }
  /** The log moved on: `head` is what the first event's parent would have had to be. */
  | { ok: false; reason: "server_ahead"; head: number };

/** One page of a store's log. */
export interface EventPage {
  events: StoredEvent[];
  /** The head when the page was read (at least the last event's seqNum). */
  head: number;
}

/** A store's event log, whichever database holds it. */
export interface EventStore {
  /** Returns the store's context, creating the store (with a fresh backendId) on first use. */
  open(storeId: string): Promise<StoreContext>;
  /**
   * Appends `events` if the store's head equals the first event's `parentSeqNum`, atomically and serialised
   * with every other append to the same store, in any process. `events` must be a dense chain
   * (`seqNum = parentSeqNum + 1`, each parent the previous event); the engine checks that first.
   */
  append(storeId: string, events: NewEvent[]): Promise<AppendResult>;
  /** Reads up to `limit` events with `seqNum > after`, in order. */
  read(storeId: string, after: number, limit: number): Promise<EventPage>;
  /** The current heads of `storeIds` (stores that do not exist are absent). */
  heads(storeIds: readonly string[]): Promise<Map<string, number>>;
}

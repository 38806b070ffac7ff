/**
 * Streams a store's events after a cursor to one pull, page by page from the database, re-chunked for the
 * wire. Used for the initial part of every pull and for live pulls catching up.
 *
 * @module
 */
import { emptyPullResponse, toPullResponses } from "./chunking.ts";
import type { EventStore } from "./event_store.ts";

/** Rows read per database round trip: a multiple of the 100-event chunk so that pages split evenly. */
export const DB_PAGE_SIZE = 500;

/** Where a pull's chunks go. Values are pre-encoded `PullResponse` JSON so fan-out encodes once. */
export interface PullSink {
  /** Sends one `PullResponse` (JSON text) as a `Chunk` of this pull. */
  send(pullResponseJson: string): void;
  /** Resolves when the transport can take more (WebSocket send buffer drained below a mark). */
  ready(): Promise<void>;
  /** `true` once the pull ended (socket closed, interrupted). */
  readonly closed: boolean;
}

/**
 * Sends every event with `seqNum > after` to `sink`; returns the last seqNum sent (or `after`).
 * With `emptyIfNothing`, an empty `NoMore` chunk is sent when there was nothing, because the client waits
 * for a first chunk before it considers the pull started.
 */
export async function streamEvents(
  store: EventStore,
  storeId: string,
  backendId: string,
  after: number,
  sink: PullSink,
  { emptyIfNothing }: { emptyIfNothing: boolean },
): Promise<number> {
  let cursor = after;
  let sent = false;
  while (!sink.closed) {
    const page = await store.read(storeId, cursor, DB_PAGE_SIZE);
    const last = page.events.at(-1);
    if (!last) break;
    for (const response of toPullResponses(page.events, backendId, page.head)) {
      await sink.ready();
      if (sink.closed) return cursor;
      sink.send(JSON.stringify(response));
      sent = true;
    }
    cursor = last.seqNum;
    if (page.events.length < DB_PAGE_SIZE) break;
  }
  if (!sent && emptyIfNothing && !sink.closed) {
    sink.send(JSON.stringify(emptyPullResponse(backendId)));
  }
  return cursor;
}

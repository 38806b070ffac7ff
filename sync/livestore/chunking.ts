/**
 * Turns stored events into pull-response chunks the client accepts: at most 100 events and about 900 KB
 * per chunk, each with page info telling how many events remain after it.
 *
 * @module
 */
import type { StoredEvent } from "./event_store.ts";
import {
  type EventEncoded,
  MAX_PULL_CHUNK_BYTES,
  MAX_PULL_EVENTS_PER_CHUNK,
  type PageInfo,
  type PullBatchItem,
  type PullResponse,
} from "./wire.ts";

/** The wire form of a stored event, with its `createdAt` as metadata (as sync-cf sends it). */
export function toBatchItem(event: StoredEvent): PullBatchItem {
  const eventEncoded: EventEncoded = {
    name: event.name,
    args: event.argsJson === null ? undefined : JSON.parse(event.argsJson),
    seqNum: event.seqNum,
    parentSeqNum: event.parentSeqNum,
    clientId: event.clientId,
    sessionId: event.sessionId,
  };
  if (eventEncoded.args === undefined) delete eventEncoded.args;
  return {
    eventEncoded,
    metadata: {
      _tag: "Some",
      value: {
        _tag: "SyncMessage.SyncMetadata",
        createdAt: new Date(event.createdAt).toISOString(),
      },
    },
  };
}

// deno-lint-ignore no-control-regex
const NON_ASCII = /[^\x00-\x7f]/;

/** An upper bound of an event's encoded size in bytes, without encoding it (3 bytes per non-ASCII unit). */
export function estimateEventBytes(event: StoredEvent): number {
  const text = (event.argsJson ?? "") + event.name + event.clientId + event.sessionId;
  // Field names, numbers, metadata and punctuation stay under 200 bytes.
  return 200 + (NON_ASCII.test(text) ? text.length * 3 : text.length);
}

/** Page info for a chunk after which `remaining` events are known to follow. */
export function pageInfo(remaining: number): PageInfo {
  return remaining > 0 ? { _tag: "MoreKnown", remaining } : { _tag: "NoMore" };
}

/**
 * Splits `events` (in seqNum order) into pull responses. `head` is the store's head, so the events after
 * each chunk are `head - lastSeqNum` (the log has no gaps).
 */
export function toPullResponses(
  events: readonly StoredEvent[],
  backendId: string,
  head: number,
): PullResponse[] {
  const responses: PullResponse[] = [];
  let batch: StoredEvent[] = [];
  let bytes = 0;
  const flush = () => {
    const last = batch.at(-1);
    if (!last) return;
    responses.push({
      batch: batch.map(toBatchItem),
      pageInfo: pageInfo(Math.max(0, head - last.seqNum)),
      backendId,
    });
    batch = [];
    bytes = 0;
  };
  for (const event of events) {
    const size = estimateEventBytes(event);
    if (
      batch.length >= MAX_PULL_EVENTS_PER_CHUNK ||
      (batch.length > 0 && bytes + size > MAX_PULL_CHUNK_BYTES)
    ) flush();
    batch.push(event);
    bytes += size;
  }
  flush();
  return responses;
}

/** The chunk sent when there is nothing to send: the client still needs one to finish its initial pull. */
export function emptyPullResponse(backendId: string): PullResponse {
  return { batch: [], pageInfo: { _tag: "NoMore" }, backendId };
}

/**
 * A {@link RoomStore} that reports what the room engine does with it: a span per commit (the group
 * commit of a room's queued pushes is one `commitSteps`), a span per catch-up that found changes,
 * and every lost clock race to `onCommitConflict` (the `tldraw_commit_conflicts_total` metric).
 * Everything else passes straight through.
 *
 * @module
 */
import { recordSpan, withSpan } from "../../telemetry.ts";
import type { ChangeSet, CommitResult, RoomStore } from "./room_store.ts";

/** What {@link observedStore} reports to. */
export interface StoreObserver {
  /** A commit found the room at another clock (another isolate committed first). */
  onCommitConflict?(roomId: string): void;
}

/** Wraps `store`. */
export function observedStore(store: RoomStore, observer: StoreObserver = {}): RoomStore {
  const commit = (
    roomId: string,
    expectedClock: number,
    steps: ChangeSet[],
    run: () => Promise<CommitResult>,
  ) =>
    withSpan("tldraw.commit", {
      "sync.room_id": roomId,
      "tldraw.expected_clock": expectedClock,
      "tldraw.steps": steps.length,
      "tldraw.records": steps.reduce((n, step) => n + step.puts.length + step.deletes.length, 0),
    }, async (span) => {
      const result = await run();
      span.setAttribute("tldraw.commit.result", result.ok ? "ok" : result.error);
      if (result.ok) span.setAttribute("tldraw.clock", result.clock);
      else if (result.error === "conflict") observer.onCommitConflict?.(roomId);
      return result;
    });
  return {
    load: (roomId) => store.load(roomId),
    create: (roomId, data) => store.create(roomId, data),
    commit: (roomId, clock, changes) =>
      commit(roomId, clock, [changes], () => store.commit(roomId, clock, changes)),
    commitSteps: (roomId, clock, steps) =>
      commit(roomId, clock, steps, () => store.commitSteps(roomId, clock, steps)),
    readClock: (roomId) => store.readClock(roomId),
    changesSince: (roomId, clock) => store.changesSince(roomId, clock),
    stepsSince: async (roomId, clock) => {
      const started = performance.now();
      const result = await store.stepsSince(roomId, clock);
      if (result.kind !== "none") {
        recordSpan("tldraw.catch_up", {
          "sync.room_id": roomId,
          "tldraw.from_clock": clock,
          "tldraw.clock": result.clock,
          "tldraw.catch_up.result": result.kind,
          "tldraw.steps": result.kind === "steps" ? result.steps.length : 0,
        }, started);
      }
      return result;
    },
    pruneTombstones: (roomId, clock, startsAt) => store.pruneTombstones(roomId, clock, startsAt),
    putSession: (roomId, entry, ttl) => store.putSession(roomId, entry, ttl),
    deleteSession: (roomId, sessionId) => store.deleteSession(roomId, sessionId),
    listSessions: (roomId) => store.listSessions(roomId),
    deleteRoom: (roomId) => store.deleteRoom(roomId),
    ...(store.saveSnapshot ? { saveSnapshot: store.saveSnapshot.bind(store) } : {}),
    ...(store.writeSlot ? { writeSlot: store.writeSlot.bind(store) } : {}),
  };
}

/**
 * A {@link RoomStore} that reports what the room engine does with it: a span per commit (the group
 * commit of a room's queued pushes is one `commitSteps`), a span per catch-up that found changes,
 * and every lost clock race to `onCommitConflict` (the `tldraw_commit_conflicts_total` metric).
 * Everything else passes straight through.
 *
 * @module
 */
import { recordSpan, withSpan } from "../../telemetry.ts";
import type { ChangeSet, CommitResult, RoomStore, StepsSince } from "./room_store.ts";
import { wrapMethods } from "./store_wrapper.ts";

/** What {@link observedStore} reports to. */
export interface StoreObserver {
  /** A commit found the room at another clock (another isolate committed first). */
  onCommitConflict?(roomId: string): void;
}

/** Wraps `store`. */
export function observedStore<S extends RoomStore>(store: S, observer: StoreObserver = {}): S {
  return wrapMethods(store, ({ method, args, call }) => {
    if (method === "commitSteps" || method === "pipelineSteps") {
      const [roomId, expectedClock, steps] = args as [string, number, ChangeSet[]];
      // A pipelined commit starts now or never (the caller then makes it with commitSteps).
      const pipelined = method === "pipelineSteps"
        ? call() as Promise<CommitResult> | undefined
        : undefined;
      if (method === "pipelineSteps" && !pipelined) return undefined;
      return withSpan("tldraw.commit", {
        "sync.room_id": roomId,
        "tldraw.expected_clock": expectedClock,
        "tldraw.steps": steps.length,
        "tldraw.records": steps.reduce((n, step) => n + step.puts.length + step.deletes.length, 0),
      }, async (span) => {
        const result = await (pipelined ?? call() as Promise<CommitResult>);
        span.setAttribute("tldraw.commit.result", result.ok ? "ok" : result.error);
        if (result.ok) span.setAttribute("tldraw.clock", result.clock);
        else observer.onCommitConflict?.(roomId);
        return result;
      });
    }
    if (method === "stepsSince") {
      const [roomId, clock] = args as [string, number];
      const started = performance.now();
      return (call() as Promise<StepsSince>).then((result) => {
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
      });
    }
    return call();
  });
}

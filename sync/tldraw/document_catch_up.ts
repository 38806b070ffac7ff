/**
 * Catching a room's document up with what other isolates committed: read from the store's change
 * log one step per clock and applied in order, each sent to the sessions as one patch with its own
 * serverClock (invariant 2). A step that is a push this isolate forwarded settles that push. When
 * the log no longer reaches back, the steps are rebuilt from a reload (catch_up.ts), or the cache is
 * replaced and the clients re-hydrate.
 *
 * @module
 */
import { settledView, stepsFromReload } from "./catch_up.ts";
import type { DocumentCore } from "./document_core.ts";
import type { LogStep } from "./room_store.ts";

/** The catch-up of one room's document. */
export class DocumentCatchUp {
  readonly #core: DocumentCore;

  constructor(core: DocumentCore) {
    this.#core = core;
  }

  /** Reads what other isolates committed after the cache's clock and applies it (in the queue). */
  async now(): Promise<void> {
    const core = this.#core;
    const readAt = Date.now();
    const result = await core.store.stepsSince(core.roomId, core.cache.clock);
    if (result.kind === "none") {
      core.confirmedAt = Math.max(core.confirmedAt, readAt);
      return;
    }
    if (result.kind === "steps" && result.steps[0]?.clock === core.cache.clock + 1) {
      if (result.writer) core.writer = result.writer;
      for (const step of result.steps) this.#applyWhole(step);
      core.cache.applyHistoryStart(result.tombstoneHistoryStartsAtClock);
      core.confirmedAt = Math.max(core.confirmedAt, readAt);
      core.sender?.pump(core.writer?.isolateId);
      return;
    }
    await this.#reloadAfterGap();
  }

  /**
   * Applies the steps of a notice (in the queue): from the one right after the cache's clock, or
   * from the store when they do not reach back that far. `writer` made them.
   */
  async fromNotice(clock: number, steps: readonly LogStep[], writer?: string): Promise<void> {
    const core = this.#core;
    if (core.cache.clock >= clock) return;
    const next = steps.findIndex((step) => step.clock === core.cache.clock + 1);
    if (next < 0) return await this.now();
    const heardAt = Date.now();
    if (writer) core.writer = { isolateId: writer, at: heardAt };
    for (const step of steps.slice(next)) {
      // A patch of a record this isolate does not have: the log has the whole records.
      if (!this.apply(step)) return await this.now();
    }
    // The writer's notice told the clock as a poll would have: the next poll is skipped. A notice
    // lost after this one shows as a gap in the next notice, or is read by the poll after next.
    core.confirmedAt = Math.max(core.confirmedAt, heardAt);
    core.sender?.pump(core.writer?.isolateId);
  }

  /**
   * Applies one committed clock of another isolate and sends it as one patch; when it is a push
   * this isolate forwarded, that push is settled with it instead. `false` (nothing applied) when
   * the step patches a record the cache does not have.
   */
  apply(step: LogStep): boolean {
    const core = this.#core;
    const forward = core.cache.applyStep(step);
    if (!forward) return false;
    if (step.origin === undefined) {
      core.sink.changed({ forward, step: true });
      return true;
    }
    core.origins.add(step.origin, step.clock);
    const push = core.sender?.stepApplied(step.origin);
    if (push?.live()) push.settle({ kind: "committed_elsewhere", forward, clock: step.clock });
    else core.sink.changed({ forward, step: true });
    return true;
  }

  /** Applies a step read from the store (whole records: it always applies). */
  #applyWhole(step: LogStep): void {
    if (!this.apply(step)) throw new Error(`step ${step.clock} of the log did not apply`);
  }

  /**
   * The log does not reach back to the cache's clock. If the tombstones do, the steps are rebuilt
   * from a reload (see catch_up.ts); otherwise no correct incremental patch exists, so the cache is
   * replaced and the clients re-hydrate (they reconnect with their lastServerClock and get a
   * hydrating connect reply, wipe_all if they are too far behind).
   */
  async #reloadAfterGap(): Promise<void> {
    const core = this.#core;
    const loaded = await core.store.load(core.roomId);
    if (!loaded) return;
    const data = settledView(loaded);
    if (data.meta.documentClock <= core.cache.clock) return;
    core.writer = data.meta.writer;
    const rebuilt = stepsFromReload(data, core.cache.clock);
    if (rebuilt.ok) {
      for (const step of rebuilt.steps) this.#applyWhole(step);
      core.cache.applyHistoryStart(data.meta.tombstoneHistoryStartsAtClock);
    } else {
      core.log.info("catch-up gap: sessions re-hydrate", {
        from: core.cache.clock,
        to: data.meta.documentClock,
        why: rebuilt.error,
      });
      core.replaceCache(data);
      core.sink.replaced();
    }
    // Steps were skipped: forwarded pushes waiting here can no longer be answered from the log.
    core.origins.reset(core.cache.clock);
    for (const push of core.sender?.forget() ?? []) {
      if (push.live()) push.settle({ kind: "lost" });
    }
  }
}

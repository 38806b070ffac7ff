/**
 * A room's serial queue: everything that reads or advances the document (admissions, handshakes,
 * push groups, catch-ups) runs one task at a time, in order. Pushes queued back to back join one
 * open group, handled as one task (group commit); any other task closes the group, so pushes never
 * jump ahead of it.
 *
 * @module
 */
import type { Logger } from "../../log.ts";

/**
 * What a task other than a push group waits for first: `undefined`, or a promise while push groups
 * that returned still have commits in flight (pipelined, group_commit.ts).
 */
export type QueueBarrier = () => Promise<void> | undefined;

/** The queue of one room. `P`: a queued push. */
export class RoomQueue<P> {
  readonly #log: Logger;
  readonly #barrier: QueueBarrier;
  #tail: Promise<void> = Promise.resolve();
  #pending = 0;
  /** Pushes waiting in the queue as one group that later pushes may still join. */
  #open: P[] | null = null;

  constructor(log: Logger, barrier: QueueBarrier = () => undefined) {
    this.#log = log;
    this.#barrier = barrier;
  }

  /** Tasks queued or running. */
  get pending(): number {
    return this.#pending;
  }

  /** Pushes waiting in the open group (they run right after what runs now). */
  get waiting(): number {
    return this.#open?.length ?? 0;
  }

  /** Queues a task; its failure is logged (the queue goes on). */
  run(task: () => Promise<void> | void): Promise<void> {
    return this.runResult(task).catch((error) => {
      this.#log.error("room task failed", { error });
    });
  }

  /** Queues a task; the returned promise rejects if it fails (the queue goes on). */
  runResult(task: () => Promise<void> | void): Promise<void> {
    // Pushes after this task must not join a group queued before it.
    this.#open = null;
    return this.#enqueue(() => {
      const wait = this.#barrier();
      return wait ? wait.then(task) : task();
    });
  }

  #enqueue(task: () => Promise<void> | void): Promise<void> {
    this.#pending++;
    const run = this.#tail.then(task);
    this.#tail = run.then(() => {}, () => {}).finally(() => this.#pending--);
    return run;
  }

  /**
   * Adds `push` to the open group, or opens a group and queues `handle` for it. Before the group
   * closes, `hold` may keep it open a little longer (a promise to wait for) so more pushes join.
   */
  submit(
    push: P,
    handle: (group: P[]) => Promise<void>,
    hold: (group: readonly P[]) => Promise<void> | undefined = () => undefined,
  ): void {
    if (this.#open) {
      this.#open.push(push);
      return;
    }
    const group: P[] = [push];
    void this.#enqueue(async () => {
      const wait = this.#open === group ? hold(group) : undefined;
      if (wait) await wait;
      if (this.#open === group) this.#open = null;
      return handle(group);
    }).catch((error) => this.#log.error("room task failed", { error }));
    this.#open = group;
  }

  /** Resolves when nothing is queued or in flight (tests, shutdown). */
  async idle(): Promise<void> {
    for (;;) {
      if (this.#pending > 0) await this.#tail;
      else {
        const wait = this.#barrier();
        if (!wait) return;
        await wait;
      }
    }
  }
}

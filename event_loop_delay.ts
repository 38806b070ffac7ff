/**
 * How late this isolate's event loop runs what is due: a timer due every {@link DEFAULT_TICK_MS}
 * reports how far behind it fired. Every socket message, commit and frame of the isolate waits
 * that long too, so a garbage collection, a long synchronous task or an overloaded machine shows
 * here (`event_loop_delay_seconds` on `/metrics`) before it shows as tail latency everywhere.
 *
 * @module
 */

/** How often the loop is checked (ms): often enough to see a stall, cheap at 40 timers/s. */
export const DEFAULT_TICK_MS = 25;

/** Stops watching. */
export interface EventLoopWatch {
  stop(): void;
}

/**
 * Calls `observe` with the delay (seconds, ≥ 0) of every tick: the time past `tickMs` since the
 * tick before it ran. A timer never fires early; even an idle loop reports about a millisecond.
 */
export function watchEventLoop(
  observe: (delaySeconds: number) => void,
  tickMs = DEFAULT_TICK_MS,
): EventLoopWatch {
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    observe(Math.max(0, now - last - tickMs) / 1000);
    last = now;
  }, tickMs);
  return { stop: () => clearInterval(timer) };
}

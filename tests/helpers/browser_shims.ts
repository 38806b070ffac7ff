/**
 * The few browser globals the tldraw sync client touches, for running it under Deno (tests only):
 *
 * * `window` / `document`: `ClientWebSocketAdapter`'s reconnect manager listens for `online`,
 *   `offline` and `visibilitychange` and reads `document.hidden`; plain EventTargets suffice. A
 *   Zero client in the same process waits for `document.visibilityState` to be `visible`.
 *   `window` exists only while a client is constructed ({@link withWindow}): a global `window`
 *   makes PGlite believe it runs in a browser.
 * * `requestAnimationFrame`: the client's 30 fps push throttle (`FpsScheduler`). Shimmed with a
 *   16 ms timer; {@link animationFramesSettled} lets tests wait for pending frames so Deno's timer
 *   sanitizer sees none left.
 *
 * @module
 */

const pendingFrames = new Map<number, ReturnType<typeof setTimeout>>();
let nextFrame = 1;

// deno-lint-ignore no-explicit-any
const g = globalThis as any;
const shimWindow = new EventTarget();

/** Runs `build` with a global `window` (an EventTarget), removed again afterwards. */
export function withWindow<T>(build: () => T): T {
  if (g.window !== undefined) return build();
  g.window = shimWindow;
  try {
    return build();
  } finally {
    delete g.window;
  }
}
if (g.document === undefined) {
  const doc = new EventTarget() as EventTarget & { hidden: boolean; visibilityState: string };
  doc.hidden = false;
  doc.visibilityState = "visible";
  g.document = doc;
}
if (g.requestAnimationFrame === undefined) {
  g.requestAnimationFrame = (callback: (time: number) => void): number => {
    const id = nextFrame++;
    pendingFrames.set(
      id,
      setTimeout(() => {
        pendingFrames.delete(id);
        callback(performance.now());
      }, 16),
    );
    return id;
  };
  g.cancelAnimationFrame = (id: number): void => {
    clearTimeout(pendingFrames.get(id));
    pendingFrames.delete(id);
  };
}

/** Resolves once no animation frame is pending (call after closing clients). */
export async function animationFramesSettled(): Promise<void> {
  while (pendingFrames.size > 0) await new Promise((resolve) => setTimeout(resolve, 20));
}

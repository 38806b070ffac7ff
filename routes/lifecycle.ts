/**
 * Process lifecycle for the HTTP layer: tracks open WebSockets so that a shutdown can close them with a
 * retryable code (clients reconnect elsewhere), and runs drain hooks (engines flushing their state) first.
 *
 * @module
 */

/** WebSocket close code 1012 "Service Restart": clients treat it as transient and reconnect. */
export const CLOSE_CODE_SERVICE_RESTART = 1012;

/** A hook run when the server starts draining, before sockets are closed. */
export type DrainHook = () => void | Promise<void>;

/** Tracks what must be closed or flushed on shutdown. */
export class Lifecycle {
  #draining = false;
  readonly #sockets = new Set<WebSocket>();
  readonly #hooks: DrainHook[] = [];

  /** `true` once {@link drain} started: new requests and sockets are refused. */
  get draining(): boolean {
    return this.#draining;
  }

  /** Number of tracked open sockets. */
  get openSockets(): number {
    return this.#sockets.size;
  }

  /** Tracks `socket` until it closes. */
  trackSocket(socket: WebSocket): void {
    this.#sockets.add(socket);
    socket.addEventListener("close", () => this.#sockets.delete(socket));
  }

  /** Registers a hook to run at the start of a drain. Returns a function that removes it. */
  onDrain(hook: DrainHook): () => void {
    this.#hooks.push(hook);
    return () => {
      const index = this.#hooks.indexOf(hook);
      if (index >= 0) this.#hooks.splice(index, 1);
    };
  }

  /**
   * Stops accepting work, runs the drain hooks (errors are reported, not thrown), then closes every
   * tracked socket with 1012 so clients reconnect to another instance.
   */
  async drain(onHookError: (error: unknown) => void = () => {}): Promise<void> {
    if (this.#draining) return;
    this.#draining = true;
    for (const hook of [...this.#hooks]) {
      try {
        await hook();
      } catch (error) {
        onHookError(error);
      }
    }
    for (const socket of [...this.#sockets]) {
      try {
        if (socket.readyState === WebSocket.OPEN || socket.readyState === WebSocket.CONNECTING) {
          socket.close(CLOSE_CODE_SERVICE_RESTART, "server restarting");
        }
      } catch {
        // Already closing: nothing to do.
      }
    }
    this.#sockets.clear();
  }
}

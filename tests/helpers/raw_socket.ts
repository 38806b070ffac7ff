/**
 * A raw WebSocket client for protocol tests: records every frame and the close event, and waits for
 * frames matching a predicate (with a timeout that never outlives the wait).
 *
 * @module
 */
import "./tldraw_settle.ts";
import { createTLSchema } from "@tldraw/tlschema";

/** A server frame, parsed. */
// deno-lint-ignore no-explicit-any
export type Frame = any;

/** A raw protocol client. */
export class RawSocket implements AsyncDisposable {
  readonly ws: WebSocket;
  /** Every parsed frame received, in order. */
  readonly frames: Frame[] = [];
  readonly opened: Promise<void>;
  /** Resolves with the close event's code and reason. */
  readonly closed: Promise<{ code: number; reason: string }>;
  #waiters: (() => void)[] = [];
  #isClosed = false;

  constructor(url: string) {
    this.ws = new WebSocket(url);
    this.opened = new Promise((resolve, reject) => {
      this.ws.addEventListener("open", () => resolve(), { once: true });
      this.ws.addEventListener("error", () => reject(new Error("socket error")), { once: true });
    });
    this.opened.catch(() => {});
    this.closed = new Promise((resolve) => {
      this.ws.addEventListener("close", (event) => {
        this.#isClosed = true;
        resolve({ code: event.code, reason: event.reason });
        this.#wake();
      });
    });
    this.ws.addEventListener("message", (event) => {
      this.frames.push(JSON.parse(event.data));
      this.#wake();
    });
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  /** Sends an object as JSON (or a string as is). */
  send(message: unknown): void {
    this.ws.send(typeof message === "string" ? message : JSON.stringify(message));
  }

  /** Waits for the first frame after index `from` matching `match`; returns it. */
  async waitFor(
    match: (frame: Frame) => boolean,
    options: { from?: number; timeoutMs?: number } = {},
  ): Promise<Frame> {
    const timeoutMs = options.timeoutMs ?? 3_000;
    const deadline = Date.now() + timeoutMs;
    let index = options.from ?? 0;
    for (;;) {
      for (; index < this.frames.length; index++) {
        if (match(this.frames[index])) return this.frames[index];
      }
      if (this.#isClosed) throw new Error(`socket closed while waiting (${timeoutMs} ms)`);
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        throw new Error(`no matching frame within ${timeoutMs} ms: ${JSON.stringify(this.frames)}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, remaining);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Data events (`patch` / `push_result`) received so far, flattened from `data` frames. */
  dataEvents(): Frame[] {
    return this.frames.flatMap((f) =>
      f.type === "data" ? f.data : f.type === "patch" || f.type === "push_result" ? [f] : []
    );
  }

  /** Waits until the flattened data events satisfy `match`. */
  async waitForEvent(match: (event: Frame) => boolean, timeoutMs = 3_000): Promise<Frame> {
    let found: Frame;
    await this.waitFor(() => {
      found = this.dataEvents().find(match);
      return found !== undefined;
    }, { timeoutMs });
    return found;
  }

  /** Closes (if needed) and waits for the close event. */
  async close(): Promise<void> {
    if (!this.#isClosed && this.ws.readyState <= WebSocket.OPEN) {
      try {
        await this.opened;
      } catch {
        // never opened
      }
      if (this.ws.readyState === WebSocket.OPEN) this.ws.close();
    }
    await this.closed;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Opens a raw socket and waits for it to be open. */
export async function openRaw(url: string): Promise<RawSocket> {
  const socket = new RawSocket(url);
  await socket.opened;
  return socket;
}

/** The server's current serialized tldraw schema (what an up-to-date client sends). */
export const currentSchema = createTLSchema().serialize();

/** A `connect` request as the real client sends it. */
export function connectRequest(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    type: "connect",
    connectRequestId: crypto.randomUUID(),
    lastServerClock: -1,
    protocolVersion: 8,
    schema: currentSchema,
    ...overrides,
  };
}

/** Opens a socket, sends `connect` and waits for the reply. */
export async function connectRaw(
  url: string,
  overrides: Record<string, unknown> = {},
): Promise<{ socket: RawSocket; reply: Frame }> {
  const socket = await openRaw(url);
  socket.send(connectRequest(overrides));
  const reply = await socket.waitFor((f) => f.type === "connect");
  return { socket, reply };
}

export { geoShape, presenceRecord } from "./tldraw_fixtures.ts";

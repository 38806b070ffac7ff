/**
 * A raw WebSocket speaking LiveStore's Effect-RPC JSON framing, for protocol tests and the benchmark, plus
 * a helper serving the LiveStore router with custom options next to a test server.
 *
 * @module
 */
import { Hono } from "hono";
import type { AppDeps } from "../../routes/deps.ts";
import { type LivestoreRouteOptions, livestoreRoutes } from "../../routes/livestore.ts";
import { errorHandler } from "../../routes/middleware/error_handler.ts";

/** A server frame as parsed JSON. */
// deno-lint-ignore no-explicit-any
export type Frame = Record<string, any>;

/** Builds the query string the real client sends (payload URI-encoded twice). */
export function livestoreQuery(storeId: string, payload?: unknown, transport = "ws"): string {
  const params = new URLSearchParams({ storeId, transport });
  if (payload !== undefined) params.set("payload", encodeURIComponent(JSON.stringify(payload)));
  return params.toString();
}

/** An event as the client encodes it. */
export function event(seqNum: number, clientId = "raw", args: unknown = { id: `e${seqNum}` }) {
  return {
    name: "v1.TodoCreated",
    args,
    seqNum,
    parentSeqNum: seqNum - 1,
    clientId,
    sessionId: `${clientId}-s`,
  };
}

/** A raw LiveStore socket. Dispose it to close it. */
export class RawLivestoreSocket implements AsyncDisposable {
  readonly socket: WebSocket;
  readonly frames: Frame[] = [];
  readonly raw: string[] = [];
  #waiters: (() => void)[] = [];
  #nextId = 0;
  readonly closed: Promise<CloseEvent>;

  private constructor(socket: WebSocket) {
    this.socket = socket;
    socket.addEventListener("message", (e) => {
      this.raw.push(String(e.data));
      try {
        this.frames.push(JSON.parse(String(e.data)));
      } catch {
        this.frames.push({ _tag: "(unparseable)", data: e.data });
      }
      this.#wake();
    });
    this.closed = new Promise((resolve) =>
      socket.addEventListener("close", (e) => {
        resolve(e);
        this.#wake();
      })
    );
  }

  /** Opens a socket to `url` (ws://host/prefix) for `storeId`. */
  static async open(url: string, storeId: string, payload?: unknown): Promise<RawLivestoreSocket> {
    const socket = new WebSocket(`${url}?${livestoreQuery(storeId, payload)}`);
    const raw = new RawLivestoreSocket(socket);
    await new Promise<void>((resolve, reject) => {
      socket.addEventListener("open", () => resolve(), { once: true });
      socket.addEventListener("error", () => reject(new Error("socket failed to open")), {
        once: true,
      });
    });
    return raw;
  }

  #wake(): void {
    for (const waiter of this.#waiters.splice(0)) waiter();
  }

  /** Sends a JSON frame (or a raw string as is). */
  send(frame: unknown): void {
    this.socket.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  /** Sends a `Request`; returns its id. */
  request(tag: string, payload: unknown): string {
    const id = String(this.#nextId++);
    this.send({
      _tag: "Request",
      id,
      tag,
      payload,
      headers: [],
      traceId: "t",
      spanId: "s",
      sampled: false,
    });
    return id;
  }

  /** Sends `SyncWsRpc.Pull`. */
  pull(storeId: string, options: { live?: boolean; cursor?: unknown } = {}): string {
    return this.request("SyncWsRpc.Pull", {
      storeId,
      live: options.live ?? false,
      cursor: options.cursor ?? { _tag: "None" },
    });
  }

  /** Sends `SyncWsRpc.Push`. */
  push(storeId: string, batch: unknown[], backendId?: string): string {
    return this.request("SyncWsRpc.Push", {
      storeId,
      batch,
      backendId: backendId === undefined ? { _tag: "None" } : { _tag: "Some", value: backendId },
    });
  }

  /** Waits for (and removes) the first frame matching `match`. */
  async next(match: (frame: Frame) => boolean, timeoutMs = 5_000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const index = this.frames.findIndex(match);
      if (index >= 0) return this.frames.splice(index, 1)[0]!;
      const left = deadline - Date.now();
      if (left <= 0 || this.socket.readyState === WebSocket.CLOSED) {
        throw new Error(`no matching frame; have ${JSON.stringify(this.frames).slice(0, 500)}`);
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        timer = setTimeout(resolve, left);
        this.#waiters.push(resolve);
      });
      clearTimeout(timer);
    }
  }

  /** The `Exit` of request `id`. */
  exit(id: string, timeoutMs?: number): Promise<Frame> {
    return this.next((f) => f._tag === "Exit" && f.requestId === id, timeoutMs);
  }

  /** The next `Chunk` of request `id`; returns its single value. */
  async chunk(id: string, timeoutMs?: number): Promise<Frame> {
    const frame = await this.next((f) => f._tag === "Chunk" && f.requestId === id, timeoutMs);
    return frame.values[0];
  }

  /** Resolves after `ms` of quiet; returns frames received meanwhile (without removing them). */
  async quiet(ms: number): Promise<Frame[]> {
    await new Promise((resolve) => setTimeout(resolve, ms));
    return [...this.frames];
  }

  /** Closes the socket and waits for the close. */
  async close(): Promise<void> {
    if (this.socket.readyState !== WebSocket.CLOSED) this.socket.close();
    await this.closed;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** A second HTTP server serving only the LiveStore router with custom options, on `deps`. */
export interface LivestoreServer extends AsyncDisposable {
  /** `ws://127.0.0.1:<port>/livestore` */
  wsUrl: string;
  /** `http://127.0.0.1:<port>/livestore` */
  httpUrl: string;
  port: number;
  close(): Promise<void>;
}

/**
 * Serves `livestoreRoutes(deps, options)` under `/livestore` on `port` (default: a free one). Its live pulls close with
 * `deps.lifecycle`'s drain; closing this server only stops listening (close it before the test server).
 */
export async function serveLivestore(
  deps: AppDeps,
  options: LivestoreRouteOptions = {},
  port = 0,
): Promise<LivestoreServer> {
  const app = new Hono();
  app.route("/livestore", livestoreRoutes(deps, options));
  app.onError(errorHandler(deps.log));
  let resolvePort: (port: number) => void;
  const listening = new Promise<number>((resolve) => (resolvePort = resolve));
  const server = Deno.serve(
    { port, hostname: "127.0.0.1", onListen: ({ port }) => resolvePort(port) },
    app.fetch,
  );
  const bound = await listening;
  let closed: Promise<void> | undefined;
  const close = () =>
    closed ??= (async () => {
      await deps.lifecycle.drain();
      await server.shutdown();
    })();
  return {
    wsUrl: `ws://127.0.0.1:${bound}/livestore`,
    httpUrl: `http://127.0.0.1:${bound}/livestore`,
    port: bound,
    close,
    [Symbol.asyncDispose]: close,
  };
}

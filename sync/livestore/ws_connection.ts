/**
 * One LiveStore WebSocket: parses Effect RPC frames, answers `Ping`, dispatches `SyncWsRpc.Pull`/`Push`
 * to the engine and keeps the connection's live pulls so that `Interrupt` or a close ends them.
 *
 * Bad input gets a protocol-correct answer for this client only: an undecodable request becomes an
 * `Exit` with a `Die` cause for that request id, an unparseable frame a `Defect` message.
 *
 * @module
 */
import type { Logger } from "../../log.ts";
import { exitFrame, type LivestoreEngine, type PullHandle } from "./engine.ts";
import type { HookContext } from "./hooks.ts";
import type { PullSink } from "./pull_stream.ts";
import {
  type ClientFrame,
  ClientFrameSchema,
  describeZodError,
  frames,
  RPC_TAGS,
  type ServerFrame,
  syncErrors,
} from "./wire.ts";

/** Stop reading more events for a pull while this much is still queued on the socket. */
const SEND_BUFFER_HIGH_WATER_BYTES = 1 << 20;
/**
 * A client this far behind on broadcasts is not reading: close with 1013 (try again later) rather than
 * buffer without bound; it reconnects and pulls from its cursor.
 */
const SEND_BUFFER_LIMIT_BYTES = 32 << 20;
/** The real client keeps one live pull per socket; a few more are tolerated, not thousands. */
export const MAX_LIVE_PULLS_PER_SOCKET = 8;
/** How often a pull waiting for the socket buffer re-checks it. */
const DRAIN_POLL_MS = 5;

/** Options for {@link LivestoreConnection}. */
export interface LivestoreConnectionOptions {
  socket: WebSocket;
  engine: LivestoreEngine;
  context: HookContext;
  log: Logger;
  /** Frames longer than this (in UTF-16 units, close to bytes) close the socket with 1009. */
  maxFrameBytes: number;
}

/** Serves one LiveStore client over a WebSocket. */
export class LivestoreConnection {
  readonly #socket: WebSocket;
  readonly #engine: LivestoreEngine;
  readonly #context: HookContext;
  readonly #log: Logger;
  readonly #maxFrameBytes: number;
  readonly #livePulls = new Map<string, PullHandle>();
  /** Pulls requested and not yet answered or established: they hold a slot of the limit too. */
  readonly #pullsStarting = new Set<string>();
  #startingPulls = 0;
  #closed = false;

  constructor(options: LivestoreConnectionOptions) {
    this.#socket = options.socket;
    this.#engine = options.engine;
    this.#context = options.context;
    this.#log = options.log;
    this.#maxFrameBytes = options.maxFrameBytes;
    this.#socket.addEventListener("message", (event) => this.#onMessage(event.data));
    this.#socket.addEventListener("close", () => this.#onClose());
    this.#socket.addEventListener("error", () => this.#onClose());
  }

  #send(frame: ServerFrame): void {
    this.#sendText(JSON.stringify(frame));
  }

  #sendText(text: string): void {
    if (this.#closed || this.#socket.readyState !== WebSocket.OPEN) return;
    if (this.#socket.bufferedAmount > SEND_BUFFER_LIMIT_BYTES) {
      this.#log.warn("livestore client too slow; closing", { storeId: this.#context.storeId });
      this.#socket.close(1013, "client too slow");
      this.#onClose();
      return;
    }
    try {
      this.#socket.send(text);
    } catch {
      // The socket closed under us; the close handler cleans up.
    }
  }

  #onMessage(data: unknown): void {
    if (typeof data !== "string") {
      this.#send(frames.defect("expected a JSON text frame"));
      return;
    }
    // The Cloudflare original auto-responds to this exact string; answer it before any parsing.
    if (data === '{"_tag":"Ping"}') {
      this.#send(frames.pong());
      return;
    }
    if (data.length > this.#maxFrameBytes) {
      this.#send(frames.defect("frame too large"));
      this.#socket.close(1009, "frame too large");
      return;
    }
    let json: unknown;
    try {
      json = JSON.parse(data);
    } catch {
      this.#send(frames.defect("frame is not valid JSON"));
      return;
    }
    const parsed = ClientFrameSchema.safeParse(json);
    if (!parsed.success) {
      // Answer the request id when there is one, so that the client's pending call fails instead of hanging.
      const requestId = requestIdOf(json);
      this.#send(
        requestId !== undefined
          ? frames.die(requestId, describeZodError(parsed.error))
          : frames.defect(`unknown or malformed message: ${describeZodError(parsed.error)}`),
      );
      return;
    }
    this.#onFrame(parsed.data);
  }

  #onFrame(frame: ClientFrame): void {
    switch (frame._tag) {
      case "Ping":
        this.#send(frames.pong());
        return;
      case "Ack":
      case "Eof":
        // We do not wait for acks: the socket's send buffer is our back-pressure.
        return;
      case "Interrupt": {
        const pull = this.#livePulls.get(frame.requestId);
        if (pull) {
          pull.close();
          this.#livePulls.delete(frame.requestId);
          this.#send(frames.interrupted(frame.requestId));
        }
        return;
      }
      case "Request":
        if (frame.tag === RPC_TAGS.wsPull) {
          this.#settle(frame.id, this.#pull(frame.id, frame.payload));
        } else if (frame.tag === RPC_TAGS.wsPush) {
          this.#settle(frame.id, this.#push(frame.id, frame.payload));
        } else this.#send(frames.die(frame.id, `Unknown request tag: ${frame.tag}`));
        return;
    }
  }

  /** The engine answers every request itself; this only keeps a bug from becoming an unhandled rejection. */
  #settle(requestId: string, work: Promise<void>): void {
    work.catch((error) => {
      this.#log.error("livestore request failed", { storeId: this.#context.storeId, error });
      this.#send(frames.die(requestId, "internal error"));
    });
  }

  async #pull(requestId: string, payload: unknown): Promise<void> {
    if (this.#livePulls.has(requestId) || this.#pullsStarting.has(requestId)) {
      this.#send(frames.die(requestId, "request id already in use"));
      return;
    }
    // Counted when requested, not when established: a burst sent at once cannot get past it.
    if (this.#livePulls.size + this.#pullsStarting.size >= MAX_LIVE_PULLS_PER_SOCKET) {
      this.#send(
        frames.failure(requestId, syncErrors.unknown("too many live pulls on this socket")),
      );
      return;
    }
    this.#pullsStarting.add(requestId);
    let result: Awaited<ReturnType<LivestoreEngine["pull"]>>;
    try {
      result = await this.#engine.pull(this.#context, payload, this.#sink(requestId), {
        allowLive: true,
      });
    } finally {
      this.#pullsStarting.delete(requestId);
    }
    if ("live" in result) {
      // The socket may have closed while the initial events were sent.
      if (this.#closed) result.live.close();
      else this.#livePulls.set(requestId, result.live);
    } else {
      this.#send(exitFrame(requestId, result.outcome));
    }
  }

  async #push(requestId: string, payload: unknown): Promise<void> {
    await this.#engine.push(
      this.#context,
      payload,
      (outcome) => this.#send(exitFrame(requestId, outcome)),
    );
  }

  #sink(requestId: string): PullSink {
    const prefix = `{"_tag":"Chunk","requestId":${JSON.stringify(requestId)},"values":[`;
    const socket = this.#socket;
    // deno-lint-ignore no-this-alias
    const connection = this;
    return {
      send: (pullResponseJson) => this.#sendText(`${prefix}${pullResponseJson}]}`),
      async ready() {
        while (
          !connection.#closed && socket.readyState === WebSocket.OPEN &&
          socket.bufferedAmount > SEND_BUFFER_HIGH_WATER_BYTES
        ) {
          await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS));
        }
      },
      get closed() {
        return connection.#closed || socket.readyState !== WebSocket.OPEN;
      },
    };
  }

  #onClose(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const pull of this.#livePulls.values()) pull.close();
    this.#livePulls.clear();
    this.#log.debug("livestore socket closed", { storeId: this.#context.storeId });
  }
}

function requestIdOf(json: unknown): string | undefined {
  if (typeof json !== "object" || json === null) return undefined;
  const { _tag, id } = json as { _tag?: unknown; id?: unknown };
  return _tag === "Request" && typeof id === "string" && /^\d{1,20}$/.test(id) ? id : undefined;
}

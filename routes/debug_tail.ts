/**
 * `GET /admin/debug/tail` (WebSocket, admins only, development only: `config.debugTail`): the
 * server's log lines as they are written, one JSON line per message, the same text as on stdout.
 * Filters: `?level=debug|info|warn|error` (at or above; default `info`; lines below `LOG_LEVEL` are
 * included too while a tail listens) and `?roomId=` (lines about that room).
 *
 * Each subscriber has a bounded queue. A client that reads too slowly (the socket's send buffer
 * stays above a limit) loses lines rather than making the server buffer without end: they are
 * counted (`debug_tail_dropped_total`) and the client gets a `debug tail dropped lines` line with
 * how many, in the place where they went missing.
 *
 * @module
 */
import type { Context } from "hono";
import type { LogLevel } from "../config.ts";
import { LEVEL_RANK, type LogEntry, type Logger } from "../log.ts";
import type { Counter } from "../metrics.ts";
import type { Lifecycle } from "./lifecycle.ts";
import { HttpError } from "./errors.ts";

/** Tunables of the tail (tests use small ones). */
export interface DebugTailOptions {
  /** Lines waiting per subscriber before new ones are dropped (default 1,000). */
  maxQueuedLines?: number;
  /** Lines are held back while the socket has more than this many bytes unsent (default 1 MiB). */
  maxBufferedBytes?: number;
}

const LEVELS = Object.keys(LEVEL_RANK) as LogLevel[];
/** How often a subscriber whose socket is backed up tries again (ms). */
const RETRY_MS = 50;

/** The tail's request handler. */
export function debugTailHandler(
  deps: { log: Logger; lifecycle: Lifecycle; dropped: Counter },
  options: DebugTailOptions = {},
): (c: Context) => Response {
  const maxQueued = options.maxQueuedLines ?? 1_000;
  const maxBuffered = options.maxBufferedBytes ?? 1024 * 1024;
  return (c) => {
    if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
      throw new HttpError("bad_request", "expected a WebSocket upgrade");
    }
    const level = c.req.query("level") ?? "info";
    if (!LEVELS.includes(level as LogLevel)) {
      throw new HttpError("bad_request", `level must be one of ${LEVELS.join(", ")}`);
    }
    const roomId = c.req.query("roomId");
    const minRank = LEVEL_RANK[level as LogLevel];
    const { socket, response } = Deno.upgradeWebSocket(c.req.raw);
    deps.lifecycle.trackSocket(socket);
    const tail = new TailSubscriber(socket, maxQueued, maxBuffered, deps.dropped);
    let unsubscribe: (() => void) | undefined;
    socket.addEventListener("open", () => {
      unsubscribe = deps.log.subscribe((entry) => {
        if (LEVEL_RANK[entry.level] < minRank) return;
        if (roomId !== undefined && entry.record.roomId !== roomId) return;
        tail.offer(entry);
      });
    });
    socket.addEventListener("close", () => {
      unsubscribe?.();
      tail.stop();
    });
    return response;
  };
}

/** A gap of `count` dropped lines, kept in the queue where the lines went missing. */
interface Gap {
  dropped: number;
}

/** One client's queue. */
class TailSubscriber {
  readonly #socket: WebSocket;
  readonly #maxQueued: number;
  readonly #maxBuffered: number;
  readonly #droppedTotal: Counter;
  readonly #queue: (string | Gap)[] = [];
  #lines = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;

  constructor(socket: WebSocket, maxQueued: number, maxBuffered: number, droppedTotal: Counter) {
    this.#socket = socket;
    this.#maxQueued = maxQueued;
    this.#maxBuffered = maxBuffered;
    this.#droppedTotal = droppedTotal;
  }

  /** Queues a line, or counts it as dropped when the queue is full. Sending happens later. */
  offer(entry: LogEntry): void {
    if (this.#stopped) return;
    if (this.#lines >= this.#maxQueued) {
      this.#droppedTotal.inc();
      const last = this.#queue.at(-1);
      if (typeof last === "object") last.dropped++;
      else this.#queue.push({ dropped: 1 });
    } else {
      this.#queue.push(entry.line);
      this.#lines++;
    }
    this.#schedule(0);
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#queue.length = 0;
  }

  #schedule(ms: number): void {
    this.#timer ??= setTimeout(() => {
      this.#timer = undefined;
      this.#flush();
    }, ms);
  }

  #flush(): void {
    if (this.#stopped || this.#socket.readyState !== WebSocket.OPEN) return;
    let sent = 0;
    for (const item of this.#queue) {
      if (this.#socket.bufferedAmount > this.#maxBuffered) break;
      if (typeof item === "string") {
        this.#socket.send(item);
        this.#lines--;
      } else {
        this.#socket.send(JSON.stringify({
          time: new Date().toISOString(),
          level: "warn",
          msg: "debug tail dropped lines",
          dropped: item.dropped,
        }));
      }
      sent++;
    }
    this.#queue.splice(0, sent);
    if (this.#queue.length > 0) this.#schedule(RETRY_MS);
  }
}

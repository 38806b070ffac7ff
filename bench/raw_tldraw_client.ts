/**
 * A raw tldraw sync v8 client for load generation: a plain WebSocket that connects with the server's
 * schema, pushes shape creates/updates or presence patches, pings, and attributes what it receives
 * (push_results to its own pushes, patches to other clients' pushes via {@link FanoutTracker}).
 *
 * @module
 */
import type { FanoutTracker, PhaseSink } from "./fanout_tracker.ts";
import {
  connectMessage,
  createPush,
  geoShape,
  ownShapeId,
  presencePush,
  presenceRecord,
  pusherOfShape,
  pusherOfUserName,
  putPush,
  updatePush,
  type WireRecord,
} from "./tldraw_records.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

/** Shared by all clients of one load-generator process. */
export interface ClientContext {
  tracker: FanoutTracker;
  /** Server presence id → pusher index, learned from presence `put`s (the server assigns the ids). */
  presencePushers: Map<string, number>;
  error(note: string): void;
}

/** What a join measured. */
export interface JoinTiming {
  ms: number;
  chars: number;
  records: number;
}

interface PendingAck {
  sentAt: number;
  sink: PhaseSink | null;
}

/** One raw protocol client. */
export class RawTldrawClient {
  /** Global pusher index (unique across rooms). */
  readonly index: number;
  /** Other clients in the room (fan-out width of each push). */
  peers = 0;
  /** The phase the client currently records into (frames received count there). */
  sink: PhaseSink | null = null;
  #socket: WebSocket | null = null;
  readonly #url: string;
  readonly #context: ClientContext;
  #clientClock = 0;
  #seq = 0;
  readonly #acks = new Map<number, PendingAck>();
  #ackWaiters: (() => void)[] = [];
  #joined: ((timing: JoinTiming) => void) | null = null;
  #joinStarted = 0;
  #closing = false;

  constructor(url: string, index: number, context: ClientContext) {
    this.#url = url;
    this.index = index;
    this.#context = context;
  }

  /** Opens the socket. */
  async open(): Promise<void> {
    const socket = new WebSocket(this.#url);
    this.#socket = socket;
    await new Promise<void>((resolve, reject) => {
      socket.onopen = () => resolve();
      socket.onerror = () => reject(new Error(`socket error opening ${this.#url}`));
    });
    socket.onerror = () => this.#context.error("socket error");
    socket.onclose = (event) => {
      if (!this.#closing) this.#context.error(`closed ${event.code} ${event.reason}`.trim());
      this.#releaseAckWaiters();
    };
    socket.onmessage = (event) => this.#onFrame(event.data as string);
  }

  /** Sends `connect` and resolves with the time until the reply (ms). */
  join(): Promise<JoinTiming> {
    const { promise, resolve } = Promise.withResolvers<JoinTiming>();
    this.#joined = resolve;
    this.#joinStarted = performance.now();
    this.#send(connectMessage());
    return promise;
  }

  /** Creates this client's own shape and puts its presence (as the real client does on connect). */
  setUp(withShape: boolean): void {
    const records: WireRecord[] = withShape
      ? [geoShape(ownShapeId(this.index), 0, this.index)]
      : [];
    this.#pushMessage(putPush(this.#clientClock + 1, records, presenceRecord(this.index)), null);
  }

  /** Pushes whole records (seeding). */
  putRecords(records: WireRecord[]): void {
    this.#pushMessage(putPush(this.#clientClock + 1, records), null);
  }

  /** One document push: a create when `create`, else a move of the client's own shape. */
  pushDocument(create: boolean, sink: PhaseSink | null): void {
    const seq = ++this.#seq;
    const clock = this.#clientClock + 1;
    this.#pushMessage(
      create ? createPush(clock, this.index, seq) : updatePush(clock, this.index, seq),
      sink,
    );
    this.#context.tracker.sent(this.index, seq, this.peers, sink, performance.now());
  }

  /** One presence-only push (cursor move). */
  pushPresence(sink: PhaseSink | null): void {
    const seq = ++this.#seq;
    this.#pushMessage(presencePush(this.#clientClock + 1, seq, this.index), sink);
    this.#context.tracker.sent(this.index, seq, this.peers, sink, performance.now());
  }

  ping(): void {
    this.#send('{"type":"ping"}');
  }

  /** Resolves when every push sent so far has its push_result (or the socket closed). */
  acked(): Promise<void> {
    if (this.#acks.size === 0 || this.#socket?.readyState !== WebSocket.OPEN) {
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#ackWaiters.push(resolve));
  }

  /** Closes the socket (not counted as an error). */
  close(): void {
    this.#closing = true;
    if (this.#socket && this.#socket.readyState <= WebSocket.OPEN) this.#socket.close(1000);
  }

  #pushMessage(message: string, sink: PhaseSink | null): void {
    const clock = ++this.#clientClock;
    this.#acks.set(clock, { sentAt: performance.now(), sink });
    if (sink) {
      sink.pendingAcks++;
      sink.sent++;
    }
    this.#send(message);
  }

  #send(message: string): void {
    if (this.#socket?.readyState === WebSocket.OPEN) this.#socket.send(message);
  }

  #onFrame(data: string): void {
    const now = performance.now();
    if (this.sink) this.sink.frames++;
    let message: Json;
    try {
      message = JSON.parse(data);
    } catch {
      this.#context.error("unparseable frame");
      return;
    }
    switch (message.type) {
      case "data":
        for (const event of message.data) this.#onEvent(event, now);
        break;
      case "patch":
      case "push_result":
        this.#onEvent(message, now);
        break;
      case "connect":
        this.#onConnect(message, data.length, now);
        break;
      case "pong":
        break;
      default:
        this.#context.error(`unexpected ${message.type}`);
    }
  }

  #onConnect(message: Json, chars: number, now: number): void {
    const diff = message.diff ?? {};
    this.#onDiff(diff, now);
    this.#joined?.({ ms: now - this.#joinStarted, chars, records: Object.keys(diff).length });
    this.#joined = null;
  }

  #onEvent(event: Json, now: number): void {
    if (event.type === "patch") {
      this.#onDiff(event.diff, now);
      return;
    }
    const pending = this.#acks.get(event.clientClock);
    if (!pending) {
      this.#context.error("push_result for an unknown push");
      return;
    }
    this.#acks.delete(event.clientClock);
    const sink = pending.sink;
    if (sink) {
      sink.ack.add(now - pending.sentAt);
      sink.pendingAcks--;
      if (event.action === "discard") sink.discards++;
      else if (event.action !== "commit") sink.rebases++;
    }
    if (this.#acks.size === 0) this.#releaseAckWaiters();
  }

  #onDiff(diff: Json, now: number): void {
    const { tracker, presencePushers } = this.#context;
    for (const id in diff) {
      const op = diff[id];
      let pusher = -1;
      let seq: unknown;
      if (id.startsWith("shape:")) {
        pusher = pusherOfShape(id);
        seq = op[0] === "put" ? op[1].x : op[0] === "patch" ? putValue(op[1].x) : undefined;
      } else if (id.startsWith("instance_presence:")) {
        if (op[0] === "put") {
          pusher = pusherOfUserName(op[1].userName);
          if (pusher >= 0) presencePushers.set(id, pusher);
          seq = op[1].cursor?.x;
        } else if (op[0] === "patch") {
          pusher = presencePushers.get(id) ?? -1;
          const cursor = op[1].cursor;
          seq = cursor?.[0] === "put"
            ? cursor[1]?.x
            : cursor?.[0] === "patch"
            ? putValue(cursor[1].x)
            : undefined;
        }
      }
      if (pusher >= 0 && typeof seq === "number" && seq > 0) {
        tracker.seen(this.index, pusher, seq, now);
      }
    }
  }

  #releaseAckWaiters(): void {
    const waiters = this.#ackWaiters;
    this.#ackWaiters = [];
    for (const wake of waiters) wake();
  }
}

/** The value of a `["put", value]` ValueOp, else undefined. */
function putValue(op: Json): unknown {
  return Array.isArray(op) && op[0] === "put" ? op[1] : undefined;
}

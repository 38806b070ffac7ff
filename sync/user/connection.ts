/**
 * One user-sync WebSocket: sends `initial_data`, then the user's row changes, and hands parsed `mutate`
 * messages to the service's per-user queue. Changes that arrive while the initial data is loading are held
 * back and filtered against what the snapshot already reflects.
 *
 * @module
 */
import type { Logger } from "../../log.ts";
import { type ChangeRecord, rowKey, toRowChange } from "./change_records.ts";
import type { UserSnapshot } from "./data.ts";
import {
  APP_CLOSE_CODE,
  type ClientMessage,
  clientMessageSchema,
  type CloseReason,
  envelopeSchema,
  type ServerMessage,
} from "./protocol.ts";

/** What a connection needs from the service. */
export interface ConnectionHost {
  /** Loads the snapshot (creating the user row if needed). Called once, after the connection is registered. */
  load(connection: UserSyncConnection): Promise<UserSnapshot>;
  /** Queues a mutation; the host sends `update`s, then `commit` or `reject` on this connection. */
  mutate(connection: UserSyncConnection, message: Extract<ClientMessage, { type: "mutate" }>): void;
  /** The connection closed. */
  closed(connection: UserSyncConnection): void;
}

/** One socket of one user. */
export class UserSyncConnection {
  readonly userId: string;
  readonly sessionId: string;
  readonly #socket: WebSocket;
  readonly #host: ConnectionHost;
  readonly #log: Logger;
  readonly #maxMessageBytes: number;
  /** Changes held back until the initial data is sent; `undefined` once live. */
  #pending: ChangeRecord[] | undefined = [];
  #reflected = new Set<number>();
  /** The highest seq delivered per row: an older change (committed earlier, seen later) is stale. */
  readonly #rowSeqs = new Map<string, number>();
  #ready: Promise<void> | undefined;
  #closed = false;

  constructor(
    socket: WebSocket,
    userId: string,
    sessionId: string,
    host: ConnectionHost,
    log: Logger,
    maxMessageBytes: number,
  ) {
    this.#socket = socket;
    this.userId = userId;
    this.sessionId = sessionId;
    this.#host = host;
    this.#log = log;
    this.#maxMessageBytes = maxMessageBytes;
  }

  /** Wires the socket's events; call before it opens. */
  attach(): void {
    const socket = this.#socket;
    socket.addEventListener("open", () => {
      this.#ready = this.#start();
      // Failures are logged and close the socket in #start; nothing else awaits this.
      this.#ready.catch(() => {});
    });
    socket.addEventListener("message", (event) => this.#onMessage(event.data));
    socket.addEventListener("close", () => this.#onClosed());
    socket.addEventListener("error", () => this.#onClosed());
  }

  async #start(): Promise<void> {
    try {
      const snapshot = await this.#host.load(this);
      if (this.#closed) return;
      this.#reflected = snapshot.reflectedSeqs;
      this.send({
        type: "initial_data",
        initialData: snapshot.initialData,
        mutationNumber: snapshot.mutationNumber,
      });
      const held = this.#pending ?? [];
      this.#pending = undefined;
      this.deliver(held);
    } catch (error) {
      this.#log.error("loading user data failed", { error });
      this.close(1011, "internal error");
      throw error;
    }
  }

  /** `true` once the socket closed (or is closing). */
  get isClosed(): boolean {
    return this.#closed;
  }

  /** Sends the changes this user has not seen yet (one `update` message). */
  deliver(records: ChangeRecord[]): void {
    if (this.#closed) return;
    if (this.#pending) {
      this.#pending.push(...records);
      return;
    }
    const changes = [];
    for (const record of records) {
      if (this.#reflected.delete(record.seq)) continue;
      const key = rowKey(record);
      if ((this.#rowSeqs.get(key) ?? 0) > record.seq) continue;
      this.#rowSeqs.set(key, record.seq);
      changes.push(toRowChange(record));
    }
    if (changes.length > 0) this.send({ type: "update", updates: changes });
  }

  /** Sends a message if the socket is still open. */
  send(message: ServerMessage): void {
    if (this.#closed || this.#socket.readyState !== WebSocket.OPEN) return;
    this.#socket.send(JSON.stringify(message));
  }

  /** Closes the socket. */
  close(code: number, reason: string): void {
    try {
      if (this.#socket.readyState === WebSocket.OPEN) this.#socket.close(code, reason);
    } catch {
      // Already closing.
    }
    this.#onClosed();
  }

  /** Refuses a malformed message: the socket is closed with 4099 `BAD_REQUEST`; nothing else is affected. */
  #refuse(why: string): void {
    this.#log.info("malformed user-sync message", { why, userId: this.userId });
    this.close(APP_CLOSE_CODE, "BAD_REQUEST" satisfies CloseReason);
  }

  #onMessage(data: unknown): void {
    if (this.#closed) return;
    if (typeof data !== "string") return this.#refuse("binary frame");
    if (data.length > this.#maxMessageBytes) return this.#refuse("message too large");
    let json: unknown;
    try {
      json = JSON.parse(data);
    } catch {
      return this.#refuse("invalid JSON");
    }
    const parsed = clientMessageSchema.safeParse(json);
    if (!parsed.success) {
      // A recognisable mutation with a bad body is rejected like any invalid mutation, so the client can
      // roll it back; anything else is a protocol error.
      const envelope = envelopeSchema.safeParse(json);
      if (envelope.success && envelope.data.type === "mutate" && envelope.data.mutationId) {
        const mutationId = envelope.data.mutationId;
        void this.#whenReady(() =>
          this.send({ type: "reject", mutationId, errorCode: "bad_request" })
        );
        return;
      }
      return this.#refuse("unknown or invalid message");
    }
    const message = parsed.data;
    void this.#whenReady(() => {
      if (message.type === "ping") this.send({ type: "pong" });
      else this.#host.mutate(this, message);
    });
  }

  /** Runs `fn` after the initial data went out, so nothing overtakes it. */
  async #whenReady(fn: () => void): Promise<void> {
    try {
      await this.#ready;
    } catch {
      return;
    }
    if (!this.#closed) fn();
  }

  #onClosed(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#pending = undefined;
    this.#host.closed(this);
  }
}

/**
 * A bus over Postgres LISTEN/NOTIFY: reaches every process (and machine) sharing the database, on any
 * platform. One channel carries all topics; receivers filter. NOTIFY is delivered to listeners that are
 * connected when it commits, so a reconnecting listener misses messages: a hint, never the truth.
 *
 * @module
 */
import type { Notifier } from "../../db/database.ts";
import {
  type Bus,
  type BusEnvelope,
  type BusHandler,
  decodeEnvelope,
  encodeEnvelope,
  newEndpointId,
  TopicHandlers,
} from "./bus.ts";

/** The default NOTIFY channel. */
export const DEFAULT_BUS_CHANNEL = "deno_sync_bus";

/** Options for {@link PostgresBus.open}. */
export interface PostgresBusOptions {
  channel?: string;
  id?: string;
  onError?: (error: unknown) => void;
}

/** A {@link Bus} on Postgres LISTEN/NOTIFY. */
export class PostgresBus implements Bus {
  readonly id: string;
  readonly #notifier: Notifier;
  readonly #channel: string;
  readonly #handlers = new TopicHandlers();
  readonly #onError: (error: unknown) => void;
  #unlisten: (() => Promise<void>) | undefined;
  #seq = 0;
  #closed = false;

  private constructor(notifier: Notifier, options: PostgresBusOptions) {
    this.#notifier = notifier;
    this.#channel = options.channel ?? DEFAULT_BUS_CHANNEL;
    this.id = options.id ?? newEndpointId();
    this.#onError = options.onError ?? (() => {});
  }

  /** Opens the bus; resolves once the LISTEN is active. */
  static async open(notifier: Notifier, options: PostgresBusOptions = {}): Promise<PostgresBus> {
    const bus = new PostgresBus(notifier, options);
    bus.#unlisten = await notifier.listen(bus.#channel, (payload) => bus.#receive(payload));
    return bus;
  }

  #receive(payload: string): void {
    const envelope = decodeEnvelope(payload);
    if (!envelope || envelope.origin === this.id || this.#closed) return;
    this.#handlers.deliver(envelope, this.#onError);
  }

  async publish(topic: string, body: BusEnvelope["body"]): Promise<void> {
    if (this.#closed) throw new Error("bus closed");
    await this.#notifier.notify(
      this.#channel,
      encodeEnvelope({ topic, origin: this.id, seq: ++this.#seq, body }),
    );
  }

  subscribe(topic: string, handler: BusHandler): () => void {
    if (this.#closed) throw new Error("bus closed");
    return this.#handlers.add(topic, handler);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#handlers.clear();
    await this.#unlisten?.();
  }
}

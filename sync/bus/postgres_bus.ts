/**
 * A bus over Postgres LISTEN/NOTIFY: reaches every process (and machine) sharing the database, on any
 * platform. One channel carries all topics; receivers filter. NOTIFY is delivered to listeners that are
 * connected when it commits, so a reconnecting listener misses messages: a hint, never the truth.
 *
 * Publishes issued while a NOTIFY is in flight go out together in the next one, as
 * `{"origin":…,"batch":[envelopes]}` (up to the payload limit): a busy room's presence updates
 * (1,500 a second for 50 users) cost ~60 NOTIFYs a second instead of one query each, and a receiver
 * skips its own batches without parsing them. Single envelopes are still sent and understood as is.
 *
 * @module
 */
import { MAX_NOTIFY_PAYLOAD_BYTES, type Notifier } from "../../db/database.ts";
import {
  type Bus,
  type BusEnvelope,
  type BusHandler,
  decodeEnvelope,
  encodeEnvelope,
  envelopeFrom,
  newEndpointId,
  TopicHandlers,
} from "./bus.ts";
import { utf8Length } from "../utf8.ts";

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
  /** Encoded envelopes waiting for the NOTIFY in flight to finish. */
  readonly #queue: Queued[] = [];
  #sending = false;
  readonly #batchPrefix: string;

  private constructor(notifier: Notifier, options: PostgresBusOptions) {
    this.#notifier = notifier;
    this.#channel = options.channel ?? DEFAULT_BUS_CHANNEL;
    this.id = options.id ?? newEndpointId();
    this.#onError = options.onError ?? (() => {});
    this.#batchPrefix = `{"origin":${JSON.stringify(this.id)},"batch":[`;
  }

  /** Opens the bus; resolves once the LISTEN is active. */
  static async open(notifier: Notifier, options: PostgresBusOptions = {}): Promise<PostgresBus> {
    const bus = new PostgresBus(notifier, options);
    bus.#unlisten = await notifier.listen(bus.#channel, (payload) => bus.#receive(payload));
    return bus;
  }

  #receive(payload: string): void {
    if (this.#closed || payload.startsWith(this.#batchPrefix)) return; // our own batch
    for (const envelope of decodeBatch(payload)) {
      if (envelope.origin !== this.id) this.#handlers.deliver(envelope, this.#onError);
    }
  }

  publish(topic: string, body: BusEnvelope["body"]): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("bus closed"));
    let text: string;
    try {
      text = encodeEnvelope({ topic, origin: this.id, seq: ++this.#seq, body });
    } catch (error) {
      return Promise.reject(error); // too large: refused like any failed publish
    }
    return new Promise((resolve, reject) => {
      this.#queue.push({ text, bytes: utf8Length(text), resolve, reject });
      if (!this.#sending) void this.#drain();
    });
  }

  /** Sends the queue, as many envelopes per NOTIFY as fit, until it is empty. */
  async #drain(): Promise<void> {
    this.#sending = true;
    while (this.#queue.length > 0) {
      let bytes = this.#batchPrefix.length + 2;
      let count = 0;
      while (count < this.#queue.length) {
        const next = this.#queue[count]!.bytes + 1;
        if (count > 0 && bytes + next > MAX_NOTIFY_PAYLOAD_BYTES) break;
        bytes += next;
        count++;
      }
      const batch = this.#queue.splice(0, count);
      const payload = batch.length === 1
        ? batch[0]!.text
        : `${this.#batchPrefix}${batch.map((q) => q.text).join(",")}]}`;
      try {
        await this.#notifier.notify(this.#channel, payload);
        for (const queued of batch) queued.resolve();
      } catch (error) {
        for (const queued of batch) queued.reject(error);
      }
    }
    this.#sending = false;
  }

  subscribe(topic: string, handler: BusHandler): () => void {
    if (this.#closed) throw new Error("bus closed");
    return this.#handlers.add(topic, handler);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#handlers.clear();
    for (const queued of this.#queue.splice(0)) queued.reject(new Error("bus closed"));
    await this.#unlisten?.();
  }
}

interface Queued {
  text: string;
  bytes: number;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/** The envelopes of a payload: one envelope, or a batch of them; none when malformed. */
function decodeBatch(payload: string): BusEnvelope[] {
  if (!payload.startsWith('{"origin":')) {
    const envelope = decodeEnvelope(payload);
    return envelope ? [envelope] : [];
  }
  try {
    const value = JSON.parse(payload) as { batch?: unknown };
    if (!Array.isArray(value.batch)) return [];
    return value.batch.flatMap((item) => {
      const envelope = envelopeFrom(item);
      return envelope ? [envelope] : [];
    });
  } catch {
    return [];
  }
}

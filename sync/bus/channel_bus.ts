/**
 * The part the in-process buses share: envelopes published in one turn of the event loop go out
 * together as one channel message, and what arrives is decoded and handed to the topic's handlers.
 * The channel itself ({@link BusChannel}) is a `BroadcastChannel` (broadcast_channel_bus.ts) or the
 * `MessagePort`s linking the isolate Workers of one process (port_bus.ts).
 *
 * @module
 */
import { nextTurn } from "../next_turn.ts";
import { type Bus, type BusEnvelope, encodeEnvelope, envelopeFrom, TopicHandlers } from "./bus.ts";

/** Where a {@link ChannelBus} sends its batches and hears those of the others. */
export interface BusChannel {
  /** Sends one batch (a JSON array of envelopes) to every other endpoint. */
  post(text: string): void;
  /** Sets the one function that receives what the other endpoints post. */
  listen(receive: (data: unknown) => void): void;
  close(): void;
}

/** A {@link Bus} over a {@link BusChannel}. */
export class ChannelBus implements Bus {
  readonly id: string;
  readonly #handlers = new TopicHandlers();
  readonly #channel: BusChannel;
  /** Envelopes published in this turn, sent together at its end. */
  #outbox: string[] = [];
  /** Cancels the flush at the end of this turn, while one is due. */
  #cancelFlush: (() => void) | null = null;
  #seq = 0;
  #closed = false;

  constructor(channel: BusChannel, id: string) {
    this.id = id;
    this.#channel = channel;
    channel.listen((data) => this.#receive(data));
  }

  // deno-lint-ignore require-await
  async publish(topic: string, body: BusEnvelope["body"]): Promise<void> {
    if (this.#closed) throw new Error("bus closed");
    // Encoded now: the size rule applies to each message, and a caller may change `body` later.
    this.#outbox.push(encodeEnvelope({ topic, origin: this.id, seq: ++this.#seq, body }));
    this.#cancelFlush ??= nextTurn(() => this.#flush());
  }

  #flush(): void {
    this.#cancelFlush = null;
    const batch = this.#outbox;
    this.#outbox = [];
    if (batch.length === 0 || this.#closed) return;
    this.#channel.post(`[${batch.join(",")}]`);
  }

  #receive(data: unknown): void {
    if (typeof data !== "string" || this.#closed) return;
    let batch: unknown;
    try {
      batch = JSON.parse(data);
    } catch {
      return; // not ours
    }
    if (!Array.isArray(batch)) return;
    for (const value of batch) {
      const envelope = envelopeFrom(value);
      if (envelope && envelope.origin !== this.id) this.#handlers.deliver(envelope);
    }
  }

  subscribe(topic: string, handler: (body: BusEnvelope["body"], envelope: BusEnvelope) => void) {
    if (this.#closed) throw new Error("bus closed");
    return this.#handlers.add(topic, handler);
  }

  close(): Promise<void> {
    // What was published before closing still goes out.
    this.#cancelFlush?.();
    this.#flush();
    this.#closed = true;
    this.#channel.close();
    this.#handlers.clear();
    return Promise.resolve();
  }
}

/**
 * A bus over `BroadcastChannel`: reaches Workers of the same process locally, and the isolates of an
 * app on Deno Deploy. One channel per topic, opened while the topic has subscribers. Locally a
 * receiver that lags silently loses messages; that is why the bus is only ever a hint.
 *
 * @module
 */
import {
  type Bus,
  type BusEnvelope,
  decodeEnvelope,
  encodeEnvelope,
  newEndpointId,
  TopicHandlers,
} from "./bus.ts";

/** Options for {@link BroadcastChannelBus}. */
export interface BroadcastChannelBusOptions {
  /** Channel name prefix, to keep several apps (or tests) apart. */
  namespace?: string;
  id?: string;
}

/** A {@link Bus} on BroadcastChannel. */
export class BroadcastChannelBus implements Bus {
  readonly id: string;
  readonly #namespace: string;
  readonly #handlers = new TopicHandlers();
  readonly #channels = new Map<string, BroadcastChannel>();
  #seq = 0;
  #closed = false;

  constructor(options: BroadcastChannelBusOptions = {}) {
    this.id = options.id ?? newEndpointId();
    this.#namespace = options.namespace ?? "deno-sync";
  }

  #channelName(topic: string): string {
    return `${this.#namespace}:${topic}`;
  }

  // deno-lint-ignore require-await
  async publish(topic: string, body: BusEnvelope["body"]): Promise<void> {
    if (this.#closed) throw new Error("bus closed");
    const text = encodeEnvelope({ topic, origin: this.id, seq: ++this.#seq, body });
    // A channel that we subscribe to can publish too; otherwise open a short-lived one.
    const open = this.#channels.get(topic);
    if (open) {
      open.postMessage(text);
    } else {
      const channel = new BroadcastChannel(this.#channelName(topic));
      channel.postMessage(text);
      channel.close();
    }
  }

  subscribe(topic: string, handler: (body: BusEnvelope["body"], envelope: BusEnvelope) => void) {
    if (this.#closed) throw new Error("bus closed");
    return this.#handlers.add(topic, handler, {
      onFirst: () => {
        const channel = new BroadcastChannel(this.#channelName(topic));
        channel.onmessage = (event: MessageEvent) => {
          const envelope = decodeEnvelope(event.data);
          if (envelope && envelope.origin !== this.id && envelope.topic === topic) {
            this.#handlers.deliver(envelope);
          }
        };
        this.#channels.set(topic, channel);
      },
      onEmpty: () => {
        this.#channels.get(topic)?.close();
        this.#channels.delete(topic);
      },
    });
  }

  close(): Promise<void> {
    this.#closed = true;
    for (const channel of this.#channels.values()) channel.close();
    this.#channels.clear();
    this.#handlers.clear();
    return Promise.resolve();
  }
}

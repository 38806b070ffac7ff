/**
 * A test double around a real {@link Bus}: loses a share of what it publishes, as a lagging
 * BroadcastChannel receiver or a dropped NOTIFY would.
 *
 * @module
 */
import type { Bus, Json } from "../../sync/bus/bus.ts";

/** A bus that silently drops `rate` (0–1) of its publications. */
export class DroppingBus implements Bus {
  readonly #inner: Bus;
  readonly #rate: number;
  readonly #random: () => number;
  /** Publications dropped / passed on so far. */
  dropped = 0;
  sent = 0;

  constructor(inner: Bus, rate: number, random: () => number = Math.random) {
    this.#inner = inner;
    this.#rate = rate;
    this.#random = random;
  }

  get id(): string {
    return this.#inner.id;
  }

  publish(topic: string, body: Json): Promise<void> {
    if (this.#random() < this.#rate) {
      this.dropped++;
      return Promise.resolve();
    }
    this.sent++;
    return this.#inner.publish(topic, body);
  }

  subscribe(topic: string, handler: Parameters<Bus["subscribe"]>[1]): () => void {
    return this.#inner.subscribe(topic, handler);
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}

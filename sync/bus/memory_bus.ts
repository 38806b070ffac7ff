/**
 * An in-process bus for tests: a hub with any number of endpoints, each standing for one isolate.
 * Delivery is asynchronous (a macrotask later) like a real bus, and faults can be injected.
 *
 * @module
 */
import { type Bus, type BusEnvelope, encodeEnvelope, newEndpointId, TopicHandlers } from "./bus.ts";

/** Decides whether one delivery is dropped (fault injection). */
export type DropRule = (envelope: BusEnvelope, to: string) => boolean;

/** How long one delivery takes (ms): different delays reorder messages (fault injection). */
export type DelayRule = (envelope: BusEnvelope, to: string) => number;

/** Connects in-process bus endpoints. */
export class MemoryBusHub {
  readonly #endpoints = new Map<string, TopicHandlers>();
  #drop: DropRule = () => false;
  #delay: DelayRule = () => 0;
  /** Deliveries dropped by the drop rule so far. */
  dropped = 0;

  /** Drops every delivery for which `rule` returns true (until replaced). */
  setDropRule(rule: DropRule): void {
    this.#drop = rule;
  }

  /** Delays each delivery by what `rule` returns (until replaced); default: none. */
  setDelayRule(rule: DelayRule): void {
    this.#delay = rule;
  }

  /** A new endpoint (one per simulated isolate). */
  connect(id: string = newEndpointId()): Bus {
    const handlers = new TopicHandlers();
    this.#endpoints.set(id, handlers);
    let seq = 0;
    let closed = false;
    return {
      id,
      // deno-lint-ignore require-await
      publish: async (topic, body) => {
        if (closed) throw new Error("bus endpoint closed");
        const envelope: BusEnvelope = { topic, origin: id, seq: ++seq, body };
        encodeEnvelope(envelope); // same size rule as the real buses
        for (const [to, target] of this.#endpoints) {
          if (to === id) continue;
          if (this.#drop(envelope, to)) {
            this.dropped++;
            continue;
          }
          const copy = structuredClone(envelope);
          setTimeout(() => target.deliver(copy), this.#delay(envelope, to));
        }
      },
      subscribe: (topic, handler) => handlers.add(topic, handler),
      close: () => {
        closed = true;
        handlers.clear();
        this.#endpoints.delete(id);
        return Promise.resolve();
      },
    };
  }
}

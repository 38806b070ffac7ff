/**
 * Several buses at once (e.g. BroadcastChannel for speed between co-located isolates, Postgres for
 * reach across processes): publishes on all, delivers each message once.
 *
 * @module
 */
import type { Bus, BusEnvelope, BusHandler } from "./bus.ts";
import { newEndpointId } from "./bus.ts";

const SEEN_LIMIT = 4_096;

/** A {@link Bus} over other buses, de-duplicating by `(origin, seq)`. */
export class CombinedBus implements Bus {
  readonly id: string;
  readonly #buses: Bus[];
  #seq = 0;

  /** The inner buses must be created with the same `id` as this bus, so receivers can de-duplicate. */
  constructor(buses: Bus[], id: string = buses[0]?.id ?? newEndpointId()) {
    if (buses.length === 0) throw new Error("CombinedBus needs at least one bus");
    if (buses.some((bus) => bus.id !== id)) {
      throw new Error("every bus of a CombinedBus must share its endpoint id");
    }
    this.id = id;
    this.#buses = buses;
  }

  async publish(topic: string, body: BusEnvelope["body"]): Promise<void> {
    // Wrap the body with one sequence number for all inner buses: inner seqs differ per bus.
    const wrapped = { combinedSeq: ++this.#seq, body };
    const results = await Promise.allSettled(this.#buses.map((bus) => bus.publish(topic, wrapped)));
    if (results.every((r) => r.status === "rejected")) {
      throw (results[0] as PromiseRejectedResult).reason;
    }
  }

  subscribe(topic: string, handler: BusHandler): () => void {
    // Per subscription: every handler must see each message once.
    const seen = new Set<string>();
    const stops = this.#buses.map((bus) =>
      bus.subscribe(topic, (body, envelope) => {
        const wrapped = body as { combinedSeq?: number; body?: BusEnvelope["body"] } | null;
        if (!wrapped || typeof wrapped.combinedSeq !== "number") return;
        const key = `${envelope.origin}:${wrapped.combinedSeq}`;
        if (seen.has(key)) return;
        seen.add(key);
        if (seen.size > SEEN_LIMIT) seen.delete(seen.values().next().value!);
        const inner = wrapped.body ?? null;
        handler(inner, { ...envelope, seq: wrapped.combinedSeq, body: inner });
      })
    );
    return () => stops.forEach((stop) => stop());
  }

  async close(): Promise<void> {
    await Promise.all(this.#buses.map((bus) => bus.close()));
  }
}

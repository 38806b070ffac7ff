/**
 * A {@link Bus} that counts what passes through another one: messages published (`sent`) and
 * delivered to a subscriber (`received`), by the kind of topic (the part before the first `:`, e.g.
 * `tldraw`, `tldraw-presence`, `livestore`, `admin`: never the room or store id after it).
 *
 * @module
 */
import type { Bus, BusHandler, Json } from "./bus.ts";

/** Where the counts go. */
export type BusCounter = (direction: "sent" | "received", kind: string) => void;

/** The kind of a topic: its prefix before the first `:`. */
export function topicKind(topic: string): string {
  const colon = topic.indexOf(":");
  return colon < 0 ? topic : topic.slice(0, colon);
}

/** Wraps `bus`; closing the wrapper closes `bus`. */
export function meteredBus(bus: Bus, count: BusCounter): Bus {
  return {
    id: bus.id,
    publish: async (topic: string, body: Json) => {
      await bus.publish(topic, body);
      count("sent", topicKind(topic));
    },
    subscribe: (topic: string, handler: BusHandler) => {
      const kind = topicKind(topic);
      return bus.subscribe(topic, (body, envelope) => {
        count("received", kind);
        handler(body, envelope);
      });
    },
    close: () => bus.close(),
  };
}

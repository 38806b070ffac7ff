/**
 * A bus over the `MessagePort`s that link the isolate Workers of one process (`--isolates N`): the
 * supervisor (isolates.ts) entangles one `MessageChannel` per pair of Workers and hands each its
 * ends. Messages go to every other Worker, batched per turn as on the other in-process bus
 * (channel_bus.ts); like every bus, it is only a hint.
 *
 * Why not `BroadcastChannel`, which reaches the same Workers: Deno hands a received broadcast
 * message to JavaScript as one number per byte and copies it again, and drops messages when a
 * receiver lags. Measured (2 Workers, one sending): receiving costs 72 µs for a 1 KB message and
 * 350–400 µs for 13 KB (half of those lost at ~700 messages/s); through a MessagePort 11 µs and
 * 26 µs, none lost.
 *
 * @module
 */
import { newEndpointId } from "./bus.ts";
import { ChannelBus } from "./channel_bus.ts";

/** A {@link Bus} over the ports to the other Workers of this process. */
export class PortBus extends ChannelBus {
  /** `ports`: one per other Worker (a port whose Worker is gone takes messages and drops them). */
  constructor(ports: readonly MessagePort[], id = newEndpointId()) {
    super({
      post: (text) => {
        for (const port of ports) port.postMessage(text);
      },
      listen: (receive) => {
        for (const port of ports) port.onmessage = (event: MessageEvent) => receive(event.data);
      },
      close: () => {
        for (const port of ports) port.close();
      },
    }, id);
  }
}

/**
 * Links `count` Workers pairwise: entry `i` lists Worker `i`'s ends, to be transferred to it (one
 * per other Worker).
 */
export function linkWorkers(count: number): MessagePort[][] {
  const ends: MessagePort[][] = Array.from({ length: count }, () => []);
  for (let i = 0; i < count; i++) {
    for (let j = i + 1; j < count; j++) {
      const { port1, port2 } = new MessageChannel();
      ends[i]!.push(port1);
      ends[j]!.push(port2);
    }
  }
  return ends;
}

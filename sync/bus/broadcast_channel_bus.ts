/**
 * A bus over `BroadcastChannel`: the isolates of an app on Deno Deploy (and, locally, Workers of
 * the same process, though `--isolates N` links its Workers with MessagePorts instead: port_bus.ts).
 * Locally a receiver that lags silently loses messages; that is why the bus is only ever a hint.
 *
 * One channel per bus, not one per topic, and the messages published in one turn of the event loop
 * go out together as one channel message (channel_bus.ts). Measured with 200 busy rooms on 2
 * Workers: Deno hands every channel message to every channel of the receiving Worker (three per
 * room) to match its name, and the process-wide channel buffer (256 messages) overflowed under a few
 * thousand notices a second, which turned lost notices into catch-up reads and re-sent forwards.
 *
 * @module
 */
import { newEndpointId } from "./bus.ts";
import { ChannelBus } from "./channel_bus.ts";

/** Options for {@link BroadcastChannelBus}. */
export interface BroadcastChannelBusOptions {
  /** Channel name, to keep several apps (or tests) apart. */
  namespace?: string;
  id?: string;
}

/** A {@link Bus} on BroadcastChannel. */
export class BroadcastChannelBus extends ChannelBus {
  constructor(options: BroadcastChannelBusOptions = {}) {
    const channel = new BroadcastChannel(options.namespace ?? "deno-sync");
    super({
      post: (text) => channel.postMessage(text),
      listen: (receive) => channel.onmessage = (event: MessageEvent) => receive(event.data),
      close: () => channel.close(),
    }, options.id ?? newEndpointId());
  }
}

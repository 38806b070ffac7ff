/**
 * Builds the configured bus for one isolate (see `BUS` in config.ts).
 *
 * @module
 */
import type { Config } from "../../config.ts";
import type { Database } from "../../db/database.ts";
import type { Logger } from "../../log.ts";
import { BroadcastChannelBus } from "./broadcast_channel_bus.ts";
import { type Bus, newEndpointId } from "./bus.ts";
import { CombinedBus } from "./combined_bus.ts";
import { PortBus } from "./port_bus.ts";
import { PostgresBus } from "./postgres_bus.ts";

/**
 * Opens the bus `config.bus` names, or `undefined` for `none`. `workerPorts`: this isolate is a
 * Worker of `--isolates N`, linked to the others by these ports; they then carry what a
 * BroadcastChannel would (port_bus.ts).
 */
export async function openBus(
  config: Pick<Config, "bus">,
  database: Database,
  log: Logger,
  workerPorts?: readonly MessagePort[],
): Promise<Bus | undefined> {
  const id = newEndpointId();
  const onError = (error: unknown) => log.error("bus handler failed", { error });
  const inProcess = () =>
    workerPorts && workerPorts.length > 0
      ? new PortBus(workerPorts, id)
      : new BroadcastChannelBus({ id });
  switch (config.bus) {
    case "none":
      return undefined;
    case "broadcast":
      return inProcess();
    case "postgres":
      return await PostgresBus.open(database.notifier, { id, onError });
    case "both":
      return new CombinedBus([
        inProcess(),
        await PostgresBus.open(database.notifier, { id, onError }),
      ], id);
  }
}

/**
 * The entry of one isolate Worker started by `isolates.ts`: waits for its configuration, serves, and
 * drains on request.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import type { FromIsolate, ToIsolate } from "./isolates.ts";
import { createLogger } from "./log.ts";
import { type RunningServer, startServer } from "./main.ts";

let server: RunningServer | undefined;
let isolate = -1;

function reply(message: FromIsolate): void {
  self.postMessage(message);
}

self.onmessage = async (event: MessageEvent<ToIsolate>) => {
  const message = event.data;
  if (message.type === "start") {
    isolate = message.isolate;
    const log = createLogger(message.config.logLevel).child({ isolate });
    try {
      server = await startServer(message.config, log, {
        reusePort: message.reusePort,
        directPort: true,
        ...(message.kvWriteLock ? { kvWriteLock: message.kvWriteLock } : {}),
        ...(message.busPorts ? { busPorts: message.busPorts } : {}),
      });
      reply({ type: "listening", isolate, port: server.port, directPort: server.directPort! });
    } catch (error) {
      reply({
        type: "failed",
        isolate,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  } else if (message.type === "shutdown") {
    await server?.shutdown(message.reason);
    reply({ type: "stopped", isolate });
  }
};

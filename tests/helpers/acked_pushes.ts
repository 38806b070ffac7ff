/**
 * A stream of pushes that records which ones the server acknowledged: the fault tests kill an
 * isolate or a process mid-stream and then check that every acknowledged push survived.
 *
 * @module
 */
import type { Frame, RawSocket } from "./raw_socket.ts";
import { geoShape } from "./tldraw_fixtures.ts";

/**
 * Pushes one new shape (`shape:<prefix><n>`) after another on `socket`, each after the last one's
 * push_result, until `stop()` holds or the socket dies. Every id whose push_result commits it (or
 * rebases onto it) is added to `acked`.
 */
export async function pushUntilStopped(
  socket: RawSocket,
  prefix: string,
  acked: Set<string>,
  stop: () => boolean,
): Promise<void> {
  for (let n = 0; !stop() && socket.ws.readyState === WebSocket.OPEN; n++) {
    const id = `shape:${prefix}${n}`;
    socket.send({ type: "push", clientClock: n, diff: { [id]: ["put", geoShape(id)] } });
    try {
      const result = await socket.waitForEvent(
        (e: Frame) => e.type === "push_result" && e.clientClock === n,
        5_000,
      );
      if (result.action === "commit" || result.action.rebaseWithDiff) acked.add(id);
    } catch {
      return; // its isolate died
    }
  }
}

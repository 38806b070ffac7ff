/**
 * An in-memory {@link RoomSocket} for engine tests without HTTP, and a polling wait helper.
 *
 * @module
 */
import "./tldraw_settle.ts";
import type { RoomSocket } from "../../sync/tldraw/room.ts";
import type { Frame } from "./raw_socket.ts";

/** Records what the engine sends and how it closes the socket. */
export class FakeSocket implements RoomSocket {
  readyState = 1;
  readonly sent: Frame[] = [];
  closedWith: { code?: number | undefined; reason?: string | undefined } | null = null;

  send(data: string): void {
    if (this.readyState !== 1) throw new Error("send on a closed socket");
    this.sent.push(JSON.parse(data));
  }

  close(code?: number, reason?: string): void {
    if (this.readyState >= 2) return;
    this.readyState = 3;
    this.closedWith = { code, reason };
  }

  /** Data events received, flattened from `data` frames. */
  dataEvents(): Frame[] {
    return this.sent.flatMap((f) => (f.type === "data" ? f.data : []));
  }
}

/** Polls `condition` every 5 ms until it holds (or throws after `timeoutMs`). */
export async function until(condition: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Sleeps (only for short, bounded waits in timer tests). */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

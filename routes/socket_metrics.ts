/**
 * Metering of the sync WebSockets at the transport, where the routes hand a socket to an engine:
 * sessions open, messages and bytes in each direction, and refusals (closes with 4099 and a reason).
 * The engines stay unaware of it: incoming frames are counted by a `message` listener, outgoing ones
 * and refusals by wrapping the socket's own `send` and `close`.
 *
 * @module
 */
import { type MetricsRegistry, serverMetrics, type SyncChannel } from "../metrics.ts";
import { utf8Length } from "../sync/utf8.ts";

/** The close code of refusals on every channel (tldraw `4099`, user-sync `APP_CLOSE_CODE`). */
const REFUSAL_CODE = 4099;
/** Close reasons used as label values; anything else is counted as `OTHER`. */
const REASON_PATTERN = /^[A-Z][A-Z0-9_]{0,39}$/;

/**
 * Meters `socket` (just upgraded, not yet open) as a session of `channel` in `registry` (nothing
 * without one). Call before the engine wraps it, so the engine's `send`/`close` calls are counted.
 */
export function meterSocket(
  socket: WebSocket,
  channel: SyncChannel,
  registry: MetricsRegistry | undefined,
): void {
  if (!registry) return;
  const metrics = serverMetrics(registry);
  const labels = { channel };
  const inLabels = { direction: "in", channel };
  const outLabels = { direction: "out", channel };
  let open = false;
  socket.addEventListener("open", () => {
    open = true;
    metrics.sessions.inc(labels);
  });
  socket.addEventListener("close", () => {
    if (open) metrics.sessions.dec(labels);
    open = false;
  });
  // Bound once per socket: sends are the hottest path of a busy room.
  const messagesIn = metrics.messages.with(inLabels);
  const bytesIn = metrics.bytes.with(inLabels);
  const messagesOut = metrics.messages.with(outLabels);
  const bytesOut = metrics.bytes.with(outLabels);
  socket.addEventListener("message", (event: MessageEvent) => {
    messagesIn.inc();
    bytesIn.inc(payloadBytes(event.data));
  });
  const send = socket.send.bind(socket);
  socket.send = (data) => {
    send(data);
    messagesOut.inc();
    bytesOut.inc(payloadBytes(data));
  };
  // For engines that know a frame's size already (see RoomSocket.sendSized).
  Object.assign(socket, {
    sendSized(data: string, utf8Bytes: number) {
      send(data);
      messagesOut.inc();
      bytesOut.inc(utf8Bytes);
    },
  });
  const close = socket.close.bind(socket);
  socket.close = (code?: number, reason?: string) => {
    if (code === REFUSAL_CODE && socket.readyState <= WebSocket.OPEN) {
      const label = reason && REASON_PATTERN.test(reason) ? reason : "OTHER";
      metrics.rejects.inc({ channel, code: label });
    }
    close(code, reason);
  };
}

/** Bytes of a message payload: UTF-8 length of text, size of binary data. */
export function payloadBytes(data: unknown): number {
  if (typeof data === "string") return utf8Length(data);
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return data.byteLength;
  if (data instanceof Blob) return data.size;
  return 0;
}

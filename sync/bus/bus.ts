/**
 * The cross-isolate bus: small, best-effort notices between the isolates (or processes) serving the
 * same rooms. Nothing on the bus is trusted to arrive: it is a hint that makes convergence fast, while
 * correctness comes from the durable catch-up path (KV change log, Postgres change table).
 *
 * Implementations: {@link MemoryBusHub} (tests), {@link BroadcastChannelBus} (Deno Deploy),
 * {@link PortBus} (the Workers of `--isolates N`), {@link PostgresBus} (LISTEN/NOTIFY: separate
 * processes or machines sharing a database), and {@link CombinedBus} (several at once,
 * de-duplicated).
 *
 * @module
 */
import { utf8Length } from "../utf8.ts";

/** A JSON value. Bus messages must stay small (Postgres NOTIFY caps a payload below 8000 bytes). */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Whether `value` is a JSON object (not `null`, not an array): what bus message bodies are. */
export function isJsonObject(value: Json | undefined): value is { [key: string]: Json } {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The largest encoded envelope a bus accepts, in bytes. */
export const MAX_BUS_MESSAGE_BYTES = 7_000;

/** What travels: a topic (e.g. `room:abc`), the sender's endpoint id, a per-sender sequence, a body. */
export interface BusEnvelope {
  topic: string;
  /** Endpoint id of the sender (one per isolate). Receivers never see their own messages. */
  origin: string;
  /** Increases by one per message from `origin`; with `origin` it identifies a message. */
  seq: number;
  body: Json;
}

/** Called for each message on a subscribed topic from another endpoint. */
export type BusHandler = (body: Json, envelope: BusEnvelope) => void;

/** One isolate's connection to the bus. */
export interface Bus {
  /** This endpoint's id (the `origin` of what it publishes). */
  readonly id: string;
  /** Publishes to every other endpoint subscribed to `topic`. Best effort: may be lost. */
  publish(topic: string, body: Json): Promise<void>;
  /** Subscribes to `topic`; returns a function that ends the subscription. */
  subscribe(topic: string, handler: BusHandler): () => void;
  /** Stops receiving and releases resources. */
  close(): Promise<void>;
}

/** Raised when a message is too big for the bus. */
export class BusMessageTooLarge extends RangeError {
  constructor(bytes: number) {
    super(`bus message of ${bytes} bytes exceeds ${MAX_BUS_MESSAGE_BYTES}`);
    this.name = "BusMessageTooLarge";
  }
}

/** Encodes an envelope, checking its size. */
export function encodeEnvelope(envelope: BusEnvelope): string {
  const text = JSON.stringify(envelope);
  const bytes = utf8Length(text);
  if (bytes > MAX_BUS_MESSAGE_BYTES) throw new BusMessageTooLarge(bytes);
  return text;
}

/** Decodes an envelope; `null` for anything malformed (a bus may carry foreign traffic). */
export function decodeEnvelope(text: unknown): BusEnvelope | null {
  if (typeof text !== "string") return null;
  try {
    return envelopeFrom(JSON.parse(text));
  } catch {
    return null;
  }
}

/** `value` as an envelope, if it has an envelope's shape. */
export function envelopeFrom(value: unknown): BusEnvelope | null {
  const v = value as Partial<BusEnvelope> | null;
  if (
    typeof v === "object" && v !== null && typeof v.topic === "string" &&
    typeof v.origin === "string" && typeof v.seq === "number" && "body" in v
  ) return v as BusEnvelope;
  return null;
}

/** Keeps per-topic handler sets; shared by the implementations. */
export class TopicHandlers {
  readonly #handlers = new Map<string, Set<BusHandler>>();

  /** Adds a handler; returns its removal function. `onEmpty`/`onFirst` track topic use. */
  add(
    topic: string,
    handler: BusHandler,
    hooks: { onFirst?: () => void; onEmpty?: () => void } = {},
  ): () => void {
    let set = this.#handlers.get(topic);
    if (!set) {
      set = new Set();
      this.#handlers.set(topic, set);
      hooks.onFirst?.();
    }
    const entry: BusHandler = (body, envelope) => handler(body, envelope);
    set.add(entry);
    return () => {
      const current = this.#handlers.get(topic);
      if (!current?.delete(entry)) return;
      if (current.size === 0) {
        this.#handlers.delete(topic);
        hooks.onEmpty?.();
      }
    };
  }

  /** Delivers `envelope` to the handlers of its topic. A throwing handler does not stop the others. */
  deliver(envelope: BusEnvelope, onError: (error: unknown) => void = reportError): void {
    const set = this.#handlers.get(envelope.topic);
    if (!set) return;
    for (const handler of [...set]) {
      try {
        handler(envelope.body, envelope);
      } catch (error) {
        onError(error);
      }
    }
  }

  /** Topics with at least one handler. */
  topics(): string[] {
    return [...this.#handlers.keys()];
  }

  clear(): void {
    this.#handlers.clear();
  }
}

/** A random endpoint id. */
export function newEndpointId(): string {
  return crypto.randomUUID().slice(0, 8);
}

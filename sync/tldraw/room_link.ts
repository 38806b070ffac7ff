/**
 * The link between the isolates that serve one room: what they tell each other (commit notices,
 * hellos, contention, presence, forwarded pushes) and how it travels on the bus. Only hints travel
 * here — the store is the truth — so a lost or duplicated message delays things, never breaks them.
 * A room publishes through {@link RoomLink}; what arrives is parsed here and handed to the room as
 * one {@link LinkMessage} (`TldrawRoom.receive`).
 *
 * Topics: `tldraw:<roomId>` (clock notices, clock_notice.ts), `tldraw-presence:<roomId>`,
 * `tldraw-fwd:<roomId>` (forwarding.ts).
 *
 * @module
 */
import type { Logger } from "../../log.ts";
import { type Bus, isJsonObject, type Json } from "../bus/bus.ts";
import { commitNotices, parseClockNotice } from "./clock_notice.ts";
import { type ForwardMessage, parseForwardMessage } from "./forwarding.ts";
import type { WireRecord } from "./protocol.ts";
import type { LogStep } from "./room_store.ts";

/** A presence record of one session, or its removal (`record: null`). */
export interface PresenceChange {
  sessionId: string;
  presenceId: string;
  record: WireRecord | null;
}

/** A message between the isolates of one room. */
export type LinkMessage =
  /** The store reached `clock` by `writer`'s commit; `steps` got it there, when they were small. */
  | { kind: "commit"; clock: number; writer?: string; steps?: LogStep[] }
  /** An isolate learned it shares the room (or joined it): it is at `clock`. */
  | { kind: "hello"; clock: number }
  /** An isolate keeps losing commit races here (at `clock`) and asks for a turn. */
  | { kind: "contention"; clock: number }
  /** A session's presence on the sending isolate. */
  | { kind: "presence"; change: PresenceChange }
  /** Forwarding between the writer and the others (forwarding.ts). */
  | { kind: "forward"; message: ForwardMessage };

/** How a room reaches its other isolates. */
export interface RoomLink {
  /** Sends `message` to the room's other isolates; never throws (a lost message is repaired). */
  publish(message: LinkMessage): void;
}

/** The bus topic of a room's clock notices. */
export function busTopic(roomId: string): string {
  return `tldraw:${roomId}`;
}

/** The bus topic on which a room's isolates forward pushes to its writer (forwarding.ts). */
export function forwardTopic(roomId: string): string {
  return `tldraw-fwd:${roomId}`;
}

/** The bus topic of a room's presence changes. */
export function presenceTopic(roomId: string): string {
  return `tldraw-presence:${roomId}`;
}

/** A room's link over a {@link Bus}. */
export class BusRoomLink implements RoomLink {
  readonly #bus: Bus;
  readonly #roomId: string;
  readonly #log: Logger;

  constructor(bus: Bus, roomId: string, log: Logger) {
    this.#bus = bus;
    this.#roomId = roomId;
    this.#log = log;
  }

  publish(message: LinkMessage): void {
    if (message.kind === "commit") {
      // In order: a receiver applies each notice's steps after the ones before.
      const { clock, writer, steps } = message;
      for (const body of commitNotices(clock, writer, steps)) {
        this.#send(busTopic(this.#roomId), body, "bus");
      }
      return;
    }
    this.#send(...this.#encode(message));
  }

  #send(topic: string, body: Json, what: string): void {
    this.#bus.publish(topic, body).catch((error) =>
      this.#log.warn(`${what} publish failed`, { roomId: this.#roomId, error })
    );
  }

  #encode(
    message: Exclude<LinkMessage, { kind: "commit" }>,
  ): [topic: string, body: Json, what: string] {
    const roomId = this.#roomId;
    switch (message.kind) {
      case "hello":
        return [busTopic(roomId), { clock: message.clock, hello: true }, "bus"];
      case "contention":
        return [busTopic(roomId), { clock: message.clock, contended: true }, "bus"];
      case "presence": {
        const { sessionId, presenceId, record } = message.change;
        return [presenceTopic(roomId), { sessionId, presenceId, record } as Json, "presence"];
      }
      case "forward":
        return [forwardTopic(roomId), message.message as unknown as Json, "forward"];
      default:
        return message satisfies never;
    }
  }

  /**
   * Hands every message of the room's topics to `deliver`, parsed (anything else on the topics is
   * ignored). Returns the unsubscribe function.
   */
  listen(deliver: (message: LinkMessage) => void): () => void {
    const roomId = this.#roomId;
    const on = <T>(topic: string, parse: (body: Json) => T | null, wrap: (m: T) => LinkMessage) =>
      this.#bus.subscribe(topic, (body) => {
        const parsed = parse(body);
        if (parsed !== null) deliver(wrap(parsed));
      });
    const unsubscribes = [
      on(busTopic(roomId), parseClockNotice, (notice): LinkMessage => {
        if (notice.contended) return { kind: "contention", clock: notice.clock };
        if (notice.hello) return { kind: "hello", clock: notice.clock };
        return {
          kind: "commit",
          clock: notice.clock,
          ...(notice.writer === undefined ? {} : { writer: notice.writer }),
          ...(notice.steps === undefined ? {} : { steps: notice.steps }),
        };
      }),
      on(presenceTopic(roomId), parsePresenceChange, (change) => ({ kind: "presence", change })),
      on(forwardTopic(roomId), parseForwardMessage, (message) => ({ kind: "forward", message })),
    ];
    return () => unsubscribes.forEach((unsubscribe) => unsubscribe());
  }
}

function parsePresenceChange(body: Json): PresenceChange | null {
  if (!isJsonObject(body)) return null;
  const { sessionId, presenceId, record } = body;
  if (typeof sessionId !== "string" || typeof presenceId !== "string") return null;
  if (record !== null && (typeof record !== "object" || Array.isArray(record))) return null;
  return { sessionId, presenceId, record: record as PresenceChange["record"] };
}

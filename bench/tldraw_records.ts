/**
 * Records and messages the tldraw benchmark sends: valid default-schema shapes and presence, the
 * server's serialized schema, and the wire encodings of pushes. The load generator encodes a push's
 * identity into the record itself (shape `x` / presence `cursor.x` = the pusher's sequence number) so
 * that receivers can attribute every patch they get without any side channel.
 *
 * @module
 */
import { createTLSchema, InstancePresenceRecordType } from "@tldraw/tlschema";
import { geoShape as baseGeoShape } from "../tests/helpers/tldraw_fixtures.ts";

/** A record as it travels on the wire. */
export type WireRecord = { id: string; typeName: string } & Record<string, unknown>;

/** The schema both servers run (what an up-to-date client sends in `connect`). */
export const SERVER_SCHEMA = createTLSchema().serialize();

/** The id of pusher `pusher`'s own shape (created once, then moved by every update push). */
export function ownShapeId(pusher: number): string {
  return `shape:c${pusher}`;
}

/** The id of a shape created by pusher `pusher` at sequence `seq`. */
export function createdShapeId(pusher: number, seq: number): string {
  return `shape:c${pusher}n${seq}`;
}

/**
 * Which pusher a shape id belongs to (`shape:c<pusher>` or `shape:c<pusher>n<seq>`), or -1 for shapes
 * the load generator did not create (e.g. seeded ones).
 */
export function pusherOfShape(id: string): number {
  if (!id.startsWith("shape:c")) return -1;
  const end = id.indexOf("n", 7);
  const value = Number(end < 0 ? id.slice(7) : id.slice(7, end));
  return Number.isInteger(value) ? value : -1;
}

/**
 * A valid fractional index for the `n`th shape (`a1<base36>V`: a fraction may not end in `0`, so
 * `a10` is invalid; uniqueness is not required by the schema).
 */
export function shapeIndex(n: number): string {
  return `a1${n.toString(36)}V`;
}

/** A valid geo shape on `page:page` at (`x`, `y`), labelled with its id. */
export function geoShape(id: string, x: number, y: number, index = "a1"): WireRecord {
  const shape = baseGeoShape(id, { x, y, index }) as WireRecord & {
    props: Record<string, unknown>;
  };
  shape.props.richText = {
    type: "doc",
    content: [{ type: "paragraph", content: [{ type: "text", text: `shape ${id}` }] }],
  };
  return shape;
}

/**
 * A presence record for pusher `pusher`. The server replaces `id` with its own presence id, so the
 * pusher is also written into `userName` (receivers map presence ids to pushers from it).
 */
export function presenceRecord(pusher: number): WireRecord {
  const record = InstancePresenceRecordType.create({
    id: InstancePresenceRecordType.createId(`bench${pusher}`),
    userId: `user:${pusher}` as never,
    userName: presenceUserName(pusher),
    currentPageId: "page:page" as never,
    cursor: { x: 0, y: 0, type: "default", rotation: 0 },
    lastActivityTimestamp: 0,
  });
  return record as unknown as WireRecord;
}

/** The `userName` a pusher's presence carries. */
export function presenceUserName(pusher: number): string {
  return `bench-${pusher}`;
}

/** Pusher index from a presence `userName`, or -1. */
export function pusherOfUserName(name: unknown): number {
  if (typeof name !== "string" || !name.startsWith("bench-")) return -1;
  const value = Number(name.slice(6));
  return Number.isInteger(value) ? value : -1;
}

/** The `connect` request of a fresh client. */
export function connectMessage(): string {
  return JSON.stringify({
    type: "connect",
    connectRequestId: crypto.randomUUID(),
    lastServerClock: -1,
    protocolVersion: 8,
    schema: SERVER_SCHEMA,
  });
}

/** A push moving pusher's own shape to `x = seq` (a `patch`, which both servers `commit`). */
export function updatePush(clientClock: number, pusher: number, seq: number): string {
  return `{"type":"push","clientClock":${clientClock},"diff":{"${
    ownShapeId(pusher)
  }":["patch",{"x":["put",${seq}]}]}}`;
}

/** A push creating one new shape at `x = seq`. */
export function createPush(clientClock: number, pusher: number, seq: number): string {
  const record = geoShape(createdShapeId(pusher, seq), seq, pusher, shapeIndex(seq));
  return JSON.stringify({
    type: "push",
    clientClock,
    diff: { [record.id]: ["put", record] },
  });
}

/** A presence-only push moving the cursor to `x = seq`. */
export function presencePush(clientClock: number, seq: number, pusher: number): string {
  return `{"type":"push","clientClock":${clientClock},"presence":["patch",{"cursor":["put",{"x":${seq},"y":${pusher},"type":"default","rotation":0}]}]}`;
}

/** A push that puts whole records (shape creates, seeding, the first presence). */
export function putPush(
  clientClock: number,
  records: WireRecord[],
  presence?: WireRecord,
): string {
  return JSON.stringify({
    type: "push",
    clientClock,
    ...(records.length ? { diff: Object.fromEntries(records.map((r) => [r.id, ["put", r]])) } : {}),
    ...(presence ? { presence: ["put", presence] } : {}),
  });
}

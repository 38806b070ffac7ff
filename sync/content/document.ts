/**
 * A room document at one moment, as stored outside the room (history versions, shared snapshots,
 * published copies): the records and the schema they conform to, as gzip-compressed JSON.
 *
 * @module
 */
import { createTLSchema } from "@tldraw/tlschema";
import type { WireRecord, WireSchema } from "../tldraw/protocol.ts";
import type { RoomStore } from "../tldraw/room_store.ts";
import { recordJson, storedRecordJson } from "../tldraw/record_json.ts";
import { type CompressedText, gzipText, type TextCompressor } from "./gzip.ts";

/** A document copy: what `GET /snapshot/:slug`, history and published routes return. */
export interface DocumentSnapshot {
  /** The room clock the copy was taken at (`0` for uploaded snapshots). */
  clock: number;
  schema: WireSchema;
  records: WireRecord[];
}

/**
 * A document copy with its records as JSON texts: a loaded room's cache, whose records are neither
 * parsed nor serialized again for it (serializing a 5,000-shape room took 12–17 ms of the thread
 * that serves its sessions, once per history version). The texts may be produced as they are
 * iterated (the records are immutable), and are iterated again if a compression is redone.
 */
export interface DocumentText {
  clock: number;
  schema: WireSchema;
  recordTexts: Iterable<string>;
}

/** Either form of a document copy (what {@link encodeSnapshot} stores). */
export type DocumentCopy = DocumentSnapshot | DocumentText;

/** A snapshot ready to store: compressed bytes plus the uncompressed size. */
export type EncodedSnapshot = CompressedText;

let currentSchema: WireSchema | undefined;

/** The serialized schema of the tldraw version this server speaks. */
export function serverSchema(): WireSchema {
  return currentSchema ??= createTLSchema().serialize() as unknown as WireSchema;
}

/**
 * JSON → gzip. Compression matters: history keeps many copies of mostly text documents. `compress`
 * may move the compression off this thread (see gzip.ts).
 */
export function encodeSnapshot(
  snapshot: DocumentCopy,
  compress: TextCompressor = gzipText,
): Promise<EncodedSnapshot> {
  return compress(snapshotParts(snapshot));
}

/**
 * The JSON text of `snapshot` in parts, a record at a time (iterable again): the compressor joins and
 * encodes them a chunk at a time, so a big document is never one string on the serving thread. The
 * records' JSON comes from their caches (record_json.ts): only the schema is serialized here.
 */
function snapshotParts(snapshot: DocumentCopy): Iterable<string> {
  const records = "recordTexts" in snapshot ? snapshot.recordTexts : snapshot.records;
  return {
    *[Symbol.iterator]() {
      yield `{"clock":${JSON.stringify(snapshot.clock)},"schema":${
        JSON.stringify(snapshot.schema)
      },"records":[`;
      let first = true;
      for (const record of records) {
        if (!first) yield ",";
        first = false;
        yield typeof record === "string" ? record : recordJson(record);
      }
      yield "]}";
    },
  };
}

/** gzip → JSON. Drivers return BYTEA as a Buffer or a Uint8Array; both are accepted. */
export async function decodeSnapshot(data: Uint8Array): Promise<DocumentSnapshot> {
  const bytes = new Uint8Array(data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  return JSON.parse(await new Response(stream).text()) as DocumentSnapshot;
}

/**
 * The room's current document, read from the room store (the source of truth, whichever isolate
 * serves the room). `null` when the room was never created.
 */
export async function readRoomDocument(
  store: RoomStore,
  roomId: string,
): Promise<DocumentSnapshot | null> {
  const data = await store.load(roomId);
  if (!data) return null;
  return {
    clock: data.meta.documentClock,
    schema: data.meta.schema ?? serverSchema(),
    records: data.records.map((record) => record.state),
  };
}

/**
 * The room's current document with its records as JSON texts, read from the room store: what a
 * history version of a room no longer loaded stores, without parsing and serializing every record
 * again. `null` when the room was never created.
 */
export async function readRoomText(
  store: RoomStore,
  roomId: string,
): Promise<DocumentText | null> {
  const data = await store.load(roomId);
  if (!data) return null;
  return {
    clock: data.meta.documentClock,
    schema: data.meta.schema ?? serverSchema(),
    recordTexts: data.records.map(storedRecordJson),
  };
}

/**
 * The change that turns `current` into `target`: records that differ are put, records not in the
 * target are removed (what a restore or a snapshot seed hands to `TldrawRoom.updateDocument`).
 */
export function replaceDocument(
  current: readonly WireRecord[],
  target: readonly WireRecord[],
): { puts: WireRecord[]; removes: string[] } {
  const byId = new Map(current.map((record) => [record.id, JSON.stringify(record)]));
  const keep = new Set(target.map((record) => record.id));
  return {
    puts: target.filter((record) => byId.get(record.id) !== JSON.stringify(record)),
    removes: current.map((record) => record.id).filter((id) => !keep.has(id)),
  };
}

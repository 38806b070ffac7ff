/**
 * The connect handshake (spec 3.2–3.3, 4): which protocol versions and schemas a client may connect
 * with, and the connect reply that hydrates it. Pure: the sessions part (room_sessions.ts) runs it
 * against the document and the presence of the moment.
 *
 * @module
 */
import type { SerializedSchema } from "@tldraw/store";
import { isEqual } from "@tldraw/utils";
import type { CachedRecord, ForwardDiff, RecordSchema } from "./push_plan.ts";
import {
  CloseReason,
  type ConnectReply,
  type ConnectRequest,
  PROTOCOL_VERSION,
  type SyncCloseReason,
  type WireNetworkDiff,
} from "./protocol.ts";
import { storedRecordId } from "./record_json.ts";
import type { ConnectedClient } from "./session.ts";

/** Whether a client may connect, and as what. */
export type Negotiation =
  | { ok: true; client: ConnectedClient; legacyRejection: boolean }
  | { ok: false; reason: SyncCloseReason; legacyRejection: boolean };

/** Checks a connect request's protocol version and schema against the server's (spec 4.3). */
export function negotiate(message: ConnectRequest, schema: RecordSchema): Negotiation {
  let version = message.protocolVersion;
  if (version === 5) version = 6;
  // Protocol 5 and 6 clients learn of fatal errors from an incompatibility_error message.
  const legacyRejection = version === 6;
  if (version === 6) version = 7;
  let supportsStringAppend = true;
  if (version === 7) {
    version = 8;
    supportsStringAppend = false;
  }
  const refuse = (reason: SyncCloseReason): Negotiation => ({ ok: false, reason, legacyRejection });
  if (version === null || version === undefined || version < PROTOCOL_VERSION) {
    return refuse(CloseReason.CLIENT_TOO_OLD);
  }
  if (version > PROTOCOL_VERSION) return refuse(CloseReason.SERVER_TOO_OLD);
  if (!message.schema) return refuse(CloseReason.CLIENT_TOO_OLD);
  const theirs = message.schema as unknown as SerializedSchema;
  const migrations = schema.store.getMigrationsSince(theirs);
  if (!migrations.ok) return refuse(schema.mismatchReason(theirs));
  if (migrations.value.some((m) => m.scope !== "record" || !m.down)) {
    return refuse(CloseReason.CLIENT_TOO_OLD);
  }
  return {
    ok: true,
    legacyRejection,
    client: {
      // The server's own object when equal: StoreSchema caches migrations by identity.
      schema: isEqual(theirs, schema.serialized) ? schema.serialized : theirs,
      requiresDownMigrations: migrations.value.length > 0,
      supportsStringAppend,
    },
  };
}

/** What a connect reply is built from. */
export interface ReplyInput {
  message: ConnectRequest;
  client: ConnectedClient;
  schema: RecordSchema;
  /** The document's clock, and what changed after the client's `lastServerClock` (spec 7.2). */
  clock: number;
  changes:
    | { wipeAll: boolean; puts: readonly CachedRecord[]; deletes: readonly string[] }
    | undefined;
  /** Every presence but the client's own. */
  presence: ForwardDiff;
  isReadonly: boolean;
  legacyAppend: boolean;
}

/**
 * The connect reply, and the document records that go into it as their stored JSON (unparsed),
 * unless the client needs them migrated. Throws `SessionRejection` when migrating fails.
 */
export function connectReply(input: ReplyInput): { reply: ConnectReply; docPuts: CachedRecord[] } {
  const { client, schema, changes } = input;
  const clientSchema = client.requiresDownMigrations ? client.schema : null;
  const presenceDiff = schema.diffFor(input.presence, clientSchema, input.legacyAppend);
  let docDiff: WireNetworkDiff = {};
  let docPuts: CachedRecord[] = [];
  if (changes && clientSchema) {
    const forward: ForwardDiff = { puts: {}, deletes: [...changes.deletes] };
    for (const record of changes.puts) forward.puts[storedRecordId(record)] = record.state;
    docDiff = schema.diffFor(forward, clientSchema, input.legacyAppend);
  } else if (changes) {
    for (const id of changes.deletes) docDiff[id] = ["remove"];
    docPuts = [...changes.puts];
  }
  return {
    reply: {
      type: "connect",
      connectRequestId: input.message.connectRequestId,
      hydrationType: changes?.wipeAll ? "wipe_all" : "wipe_presence",
      protocolVersion: PROTOCOL_VERSION,
      schema: schema.wire,
      serverClock: input.clock,
      diff: { ...presenceDiff, ...docDiff },
      isReadonly: input.isReadonly,
    },
    docPuts,
  };
}

/**
 * The room engine's pure parts on their own: planning a group of pushes, the forwarding rules
 * (Forwarder, OriginIndex, ForwardReplies), the sender's batching and result order, the cache, and
 * the handshake's version and schema rules.
 */
import assert from "node:assert/strict";
import type { StoreSchema, UnknownRecord } from "@tldraw/store";
import { createTLSchema } from "@tldraw/tlschema";
import { FakeSocket, sleep } from "../helpers/fake_socket.ts";
import { connectRequest, geoShape, presenceRecord } from "../helpers/raw_socket.ts";
import { silentLogger } from "../../log.ts";
import { ChunkAssembler } from "../../sync/tldraw/chunks.ts";
import { encodeEnvelope, type Json } from "../../sync/bus/bus.ts";
import {
  commitNotices,
  MAX_COMMIT_NOTICES,
  parseClockNotice,
} from "../../sync/tldraw/clock_notice.ts";
import type { LogStep } from "../../sync/tldraw/room_store.ts";
import {
  Forwarder,
  type ForwardItem,
  ForwardReplies,
  ForwardTimeouts,
  MAX_FORWARD_BATCH_BYTES,
  OriginIndex,
} from "../../sync/tldraw/forwarding.ts";
import type { PlanSession } from "../../sync/tldraw/push_plan.ts";
import { RecordSchema, toNetworkDiff } from "../../sync/tldraw/push_plan.ts";
import { diffRecord } from "../../sync/tldraw/diff.ts";
import { type GroupContext, planGroup } from "../../sync/tldraw/push_group.ts";
import type { PushRequest, WireNetworkDiff, WireRecord } from "../../sync/tldraw/protocol.ts";
import type { PushOutcome, QueuedPush } from "../../sync/tldraw/queued_push.ts";
import { RoomCache } from "../../sync/tldraw/room_cache.ts";
import { Peers } from "../../sync/tldraw/room_presence.ts";
import type { ConnectRequest } from "../../sync/tldraw/protocol.ts";
import type { Session } from "../../sync/tldraw/session.ts";
import { negotiate } from "../../sync/tldraw/session_handshake.ts";
import { SessionSender } from "../../sync/tldraw/session_sender.ts";

const schema = RecordSchema.for(createTLSchema() as unknown as StoreSchema<UnknownRecord, unknown>);
const shape = (id: string, extra: Record<string, unknown> = {}) =>
  geoShape(id, extra) as unknown as WireRecord;

// ---------------------------------------------------------------------------------------------
// Planning a group

/** A queued push that records its outcomes (planning never settles: the caller does). */
function queued(
  diff: WireNetworkDiff | undefined,
  options: { key?: string; origin?: string; presenceId?: string; presence?: unknown } = {},
): QueuedPush & { outcomes: PushOutcome[] } {
  const client: PlanSession = {
    isReadonly: false,
    presenceId: options.presenceId ?? null,
    clientSchema: null,
  };
  const message = {
    type: "push",
    clientClock: 0,
    ...(diff ? { diff } : {}),
    ...(options.presence ? { presence: options.presence } : {}),
  } as PushRequest;
  const outcomes: PushOutcome[] = [];
  return {
    message,
    client,
    key: options.key ?? "a",
    origin: options.origin,
    outcomes,
    live: () => true,
    settle: (outcome) => outcomes.push(outcome),
    redirect: () => {},
  };
}

function groupContext(overrides: Partial<GroupContext> = {}): GroupContext {
  return {
    schema,
    records: new Map(),
    presences: new Map(),
    clock: 10,
    roomChars: 0,
    maxRoomBytes: 1_000_000,
    maxRecordChars: 100_000,
    maxRecordIdChars: 512,
    legacyAppend: false,
    tombstones: new Set(),
    committedAt: () => undefined,
    ...overrides,
  };
}

Deno.test("planGroup: each push sees the ones before it; changing pushes get consecutive clocks", () => {
  const pushes = [
    queued({ "shape:a": ["put", shape("shape:a")] }),
    queued({ "shape:a": ["patch", { x: ["put", 5] }] }, { key: "b" }),
    queued({ "shape:none": ["patch", { x: ["put", 1] }] }, { key: "c" }),
    queued({ "shape:a": ["remove"] }, { key: "d" }),
  ];
  const { items, steps } = planGroup(groupContext(), pushes, 10);
  assert.deepEqual(items.map((item) => item.clock), [11, 12, undefined, 13]);
  assert.equal(steps.length, 3);
  // The patch was planned against the record the first push created.
  assert.equal(steps[1]!.puts[0]!.record.x, 5);
  assert.equal(steps[1]!.puts[0]!.prev?.lastChangedClock, 11);
  // A patch of a record that does not exist changes nothing.
  assert.equal(items[2]!.plan?.docDiff, undefined);
  assert.deepEqual(steps[2]!.deletes.map((d) => d.id), ["shape:a"]);
  // Planning leaves everything to the caller: nothing was settled.
  assert.ok(pushes.every((push) => push.outcomes.length === 0));
});

Deno.test("planGroup: a new id is marked as having no tombstone unless the room deleted it (committed, in flight or in the group)", () => {
  const ctx = groupContext({ tombstones: new Set(["shape:gone"]) });
  const first = planGroup(ctx, [
    queued({ "shape:new": ["put", shape("shape:new")] }),
    queued({ "shape:gone": ["put", shape("shape:gone")] }, { key: "b" }),
    queued({ "shape:new": ["patch", { x: ["put", 5] }] }, { key: "c" }),
    queued({ "shape:new": ["remove"] }, { key: "d" }),
    queued({ "shape:new": ["put", shape("shape:new")] }, { key: "e" }),
  ], 10);
  const marks = (steps: typeof first.steps) =>
    steps.flatMap((step) => step.puts.map((put) => [put.record.id, put.noTombstone === true]));
  assert.deepEqual(marks(first.steps), [
    ["shape:new", true],
    ["shape:gone", false], // a committed tombstone
    ["shape:new", false], // an update
    ["shape:new", false], // deleted earlier in the group
  ]);
  // Planned on the state a group in flight leaves: its deletes count too.
  const next = planGroup(
    { ...ctx, records: first.records, clock: first.clock },
    [
      queued({ "shape:other": ["put", shape("shape:other")] }),
      queued({ "shape:new": ["remove"] }, { key: "b" }),
    ],
    10,
  );
  const after = planGroup(
    { ...ctx, records: next.records, clock: next.clock },
    [queued({ "shape:new": ["put", shape("shape:new")] })],
    10,
  );
  assert.deepEqual(marks(next.steps), [["shape:other", true]]);
  assert.deepEqual(marks(after.steps), [["shape:new", false]]);
});

Deno.test("planGroup: a rejected push skips the rest of its client's pushes, not others'", () => {
  const { items, steps } = planGroup(groupContext(), [
    queued({ "shape:bad": ["put", shape("shape:bad", { x: "nope" })] }, { key: "a" }),
    queued({ "shape:a2": ["put", shape("shape:a2")] }, { key: "a" }),
    queued({ "shape:b": ["put", shape("shape:b")] }, { key: "b" }),
  ], 10);
  assert.equal(items[0]!.rejection, "INVALID_RECORD");
  assert.equal(items[0]!.error, undefined, "the client's fault: nothing to log");
  assert.deepEqual(Object.keys(items[1]!), ["push"], "skipped");
  assert.equal(items[2]!.clock, 11);
  assert.equal(steps.length, 1);
});

Deno.test("planGroup: an origin committed already contributes nothing; origins go into their steps", () => {
  const { items, steps } = planGroup(
    groupContext({ committedAt: (origin) => origin === "x:1" ? 7 : undefined }),
    [
      queued({ "shape:a": ["put", shape("shape:a")] }, { origin: "x:1" }),
      queued({ "shape:b": ["put", shape("shape:b")] }, { origin: "x:2" }),
    ],
    10,
  );
  assert.equal(items[0]!.committedAt, 7);
  assert.equal(items[0]!.plan, undefined);
  assert.equal(items[1]!.clock, 11);
  assert.equal(steps[0]!.origin, "x:2");
});

Deno.test("planGroup: the room size limit counts the group's earlier pushes; `take` bounds the group", () => {
  const size = JSON.stringify(shape("shape:a")).length;
  const { items } = planGroup(groupContext({ maxRoomBytes: size * 2 + 10 }), [
    queued({ "shape:a": ["put", shape("shape:a")] }, { key: "a" }),
    queued({ "shape:b": ["put", shape("shape:b")] }, { key: "b" }),
    queued({ "shape:c": ["put", shape("shape:c")] }, { key: "c" }),
  ], 10);
  assert.deepEqual(items.map((item) => item.rejection), [undefined, undefined, "ROOM_TOO_LARGE"]);
  const taken = planGroup(groupContext(), [queued({}), queued({}), queued({})], 2);
  assert.equal(taken.items.length, 2);
});

Deno.test("planGroup: presence is planned against the client's earlier presence in the group", () => {
  const presenceId = "instance_presence:p";
  const { items, steps } = planGroup(groupContext(), [
    queued(undefined, { presenceId, presence: ["put", presenceRecord(1)] }),
    queued(undefined, {
      presenceId,
      presence: ["patch", { cursor: ["put", { x: 9, y: 0, type: "default", rotation: 0 }] }],
    }),
  ], 10);
  assert.equal(steps.length, 0, "presence never moves the clock");
  assert.equal(items[0]!.plan?.presence?.record.id, presenceId);
  const second = items[1]!.plan?.presence;
  assert.ok(second, "a patch of the presence the first push put");
  assert.deepEqual((second.record.cursor as { x: number }).x, 9);
});

// ---------------------------------------------------------------------------------------------
// Forwarding rules

function forwardItem(origin: string, bytes = 100, forwardable = true): ForwardItem<string> {
  return {
    origin,
    push: origin,
    sessionId: "s",
    message: { type: "push", clientClock: 0, diff: {} },
    diff: {},
    bytes,
    forwardable,
  };
}

Deno.test("Forwarder: one batch in flight, in order, bounded by bytes; what cannot go is committed here", () => {
  const forwarder = new Forwarder<string>("me");
  assert.equal(forwarder.next("writer", 0, 0), null, "nothing queued");
  forwarder.enqueue(forwardItem("a", 3_000));
  forwarder.enqueue(forwardItem("b", 3_000));
  const first = forwarder.next("writer", 5, 0);
  assert.ok(first && first !== "direct" && first.kind === "push");
  assert.deepEqual(first.pushes.map((p) => p.origin), ["a"], "b would pass the byte limit");
  assert.equal(first.base, 5);
  assert.equal(forwarder.next("writer", 5, 0), null, "one batch at a time");
  assert.equal(forwarder.target, "writer");
  assert.equal(forwarder.resolve("a")?.push, "a");
  const second = forwarder.next("writer", 6, 0);
  assert.ok(second && second !== "direct" && second.kind === "push");
  assert.deepEqual(second.pushes.map((p) => p.origin), ["b"]);
  forwarder.resolve("b");
  assert.equal(forwarder.busy, false);
  forwarder.enqueue(forwardItem("big", MAX_FORWARD_BATCH_BYTES + 1, false));
  assert.equal(forwarder.next("writer", 6, 0), "direct");
});

Deno.test("Forwarder: a silent writer gets the batch again, then is given up on; a busy one later", () => {
  const forwarder = new Forwarder<string>("me");
  forwarder.enqueue(forwardItem("a"));
  forwarder.next("writer", 0, 0);
  assert.equal(forwarder.due(ForwardTimeouts.resend - 1), null);
  assert.equal(forwarder.due(ForwardTimeouts.resend), "resend");
  const again = forwarder.resend(3, ForwardTimeouts.resend);
  assert.ok(again?.kind === "push" && again.base === 3 && again.pushes[0]?.origin === "a");
  assert.equal(forwarder.due(ForwardTimeouts.giveUp), "give_up");
  // Heard from the writer meanwhile (its commits): the batch waits longer.
  forwarder.heardFrom("writer", ForwardTimeouts.giveUp - 10);
  assert.equal(forwarder.due(ForwardTimeouts.giveUp), null);
  assert.equal(forwarder.due(ForwardTimeouts.giveUpBusy), "give_up");
  forwarder.enqueue(forwardItem("b"));
  assert.deepEqual(forwarder.takeAll().map((item) => item.origin), ["a", "b"], "in flight first");
  assert.equal(forwarder.busy, false);
});

Deno.test("Forwarder: pushes sent before a committed one in its batch were not committed", () => {
  const forwarder = new Forwarder<string>("me");
  for (const origin of ["a", "b", "c"]) forwarder.enqueue(forwardItem(origin));
  forwarder.next("writer", 0, 0);
  assert.deepEqual(forwarder.unansweredBefore("c").map((item) => item.origin), ["a", "b"]);
  forwarder.resolve("a");
  assert.deepEqual(forwarder.unansweredBefore("c").map((item) => item.origin), ["b"]);
  assert.deepEqual(forwarder.unansweredBefore("unknown"), []);
});

Deno.test("OriginIndex: knows every origin after completeFrom; forgets the oldest half when full", () => {
  const index = new OriginIndex(4);
  index.add("x", 5);
  assert.equal(index.clockOf("x"), 5);
  assert.equal(index.clockOf("y"), undefined);
  assert.equal(index.completeFrom, 4);
  for (let clock = 6; clock <= 20_006; clock++) index.add(`o${clock}`, clock);
  // The 20,001st origin made it forget the oldest 10,000, and the claim to know their clocks.
  assert.equal(index.clockOf("x"), undefined);
  assert.equal(index.completeFrom, 10_004);
  assert.equal(index.clockOf("o10004"), undefined);
  assert.equal(index.clockOf("o10005"), 10_005);
  index.reset(30_000);
  assert.equal(index.completeFrom, 30_000);
  assert.equal(index.clockOf("o20006"), undefined);
});

Deno.test("ForwardReplies: discards and rejections, one reply per batch; commits need none", () => {
  const replies = new ForwardReplies();
  replies.add({ from: "i1", batch: 1 }, { origin: "a", committed: 3 });
  replies.add({ from: "i1", batch: 1 }, { origin: "b", discarded: 3 });
  replies.add({ from: "i1", batch: 1 }, { origin: "c", rejected: "INVALID_RECORD" });
  replies.add({ from: "i2", batch: 1 }, { origin: "d", discarded: 3 });
  const messages = replies.messages("writer", 9);
  assert.deepEqual(messages, [
    {
      kind: "result",
      to: "i1",
      from: "writer",
      batch: 1,
      clock: 9,
      outcomes: [{ origin: "b", discarded: 3 }, { origin: "c", rejected: "INVALID_RECORD" }],
    },
    {
      kind: "result",
      to: "i2",
      from: "writer",
      batch: 1,
      clock: 9,
      outcomes: [{ origin: "d", discarded: 3 }],
    },
  ]);
  assert.deepEqual(replies.messages("writer", 9), [], "emptied");
});

// ---------------------------------------------------------------------------------------------
// Sending

function session(socket: FakeSocket): Session {
  return {
    sessionId: "s",
    socket,
    phase: {
      kind: "connected",
      client: {
        schema: schema.serialized,
        requiresDownMigrations: false,
        supportsStringAppend: true,
      },
    },
    presenceId: null,
    isReadonly: false,
    meta: undefined,
    userId: undefined,
    startedAt: 0,
    lastInteraction: 0,
    legacyRejection: false,
    assembler: new ChunkAssembler(1_000),
    outbox: [],
    batchOpen: false,
    resultSlots: [],
  };
}

const patch = (x: number) => ({
  type: "patch" as const,
  diff: { "shape:a": ["patch", { x: ["put", x] }] } as WireNetworkDiff,
  serverClock: x,
});

Deno.test("SessionSender: the first event goes at once, later ones in the window as one frame", async () => {
  let clock = 0;
  const sender = new SessionSender({ batchMs: 30, log: silentLogger, clock: () => clock });
  const socket = new FakeSocket();
  const s = session(socket);
  sender.sendData(s, patch(1));
  sender.sendData(s, patch(2));
  sender.sendData(s, patch(3));
  assert.equal(socket.sent.length, 1);
  await sleep(60);
  assert.deepEqual(socket.sent.map((f) => f.data.length), [1, 2]);
  sender.stop();
  clock = 1;
});

Deno.test("SessionSender: while a group is held, events wait and leave as one frame", () => {
  const sender = new SessionSender({ batchMs: 1_000, log: silentLogger, clock: () => 0 });
  const socket = new FakeSocket();
  const s = session(socket);
  sender.hold();
  sender.sendData(s, patch(1));
  sender.sendData(s, patch(2));
  assert.equal(socket.sent.length, 0);
  sender.release();
  assert.deepEqual(socket.sent.map((f) => f.data.length), [2]);
  sender.stop();
});

Deno.test("SessionSender: a result behind a forwarded push waits for it; results leave in push order", () => {
  const answered: string[] = [];
  const sender = new SessionSender({
    batchMs: 1_000,
    log: silentLogger,
    clock: () => 4,
    onPushAnswered: (push) => answered.push(String(push.clientClock)),
  });
  const socket = new FakeSocket();
  const s = session(socket);
  const push = (clientClock: number): PushRequest => ({ type: "push", clientClock, diff: {} });
  s.resultSlots.push({ origin: "o1", message: push(0) });
  sender.answerPush(s, push(1), "commit");
  assert.deepEqual(answered, [], "held behind the forwarded push");
  sender.settleSlot(s, "o1", "discard");
  assert.deepEqual(answered, ["0", "1"]);
  sender.flush(s);
  const results = socket.dataEvents().filter((e) => e.type === "push_result");
  assert.deepEqual(results.map((r) => [r.clientClock, r.action, r.serverClock]), [
    [0, "discard", 4],
    [1, "commit", 4],
  ]);
  sender.stop();
});

// ---------------------------------------------------------------------------------------------
// The cache

Deno.test("RoomCache: a load's clock covers every record and tombstone; sizes add up", () => {
  const cache = new RoomCache();
  const a = shape("shape:a");
  const clock = cache.replace({
    meta: { documentClock: 3, tombstoneHistoryStartsAtClock: 2, schema: null },
    records: [{ state: a, lastChangedClock: 5 }],
    tombstones: new Map([["shape:gone", 7]]),
  });
  assert.equal(clock, 7);
  assert.equal(cache.roomChars, JSON.stringify(a).length);
  assert.equal(cache.historyStart, 2);
});

Deno.test("RoomCache: changesSince gives puts and deletes after a clock, wipe_all before the history", () => {
  const cache = new RoomCache();
  cache.replace({
    meta: { documentClock: 0, tombstoneHistoryStartsAtClock: 0, schema: null },
    records: [{ state: shape("shape:old"), lastChangedClock: 0 }],
    tombstones: new Map(),
  });
  cache.applyCommitted({ puts: [{ record: shape("shape:a") }], deletes: [] }, 1);
  const old = cache.records.get("shape:old")!;
  cache.applyCommitted({ puts: [], deletes: [{ id: "shape:old", prev: old }] }, 2);
  assert.equal(cache.changesSince(2), undefined);
  const since1 = cache.changesSince(1)!;
  assert.equal(since1.wipeAll, false);
  assert.deepEqual(since1.puts, []);
  assert.deepEqual(since1.deletes, ["shape:old"]);
  const since0 = cache.changesSince(0)!;
  assert.deepEqual(since0.puts.map((r) => r.state.id), ["shape:a"]);
  // A client from the future, or from before the tombstone history: everything, wiped.
  assert.equal(cache.changesSince(9)!.wipeAll, true);
  cache.applyHistoryStart(2);
  assert.equal(cache.changesSince(1)!.wipeAll, true);
  assert.equal(cache.tombstones.size, 1, "the tombstone at clock 2 stays");
});

Deno.test("RoomCache: another isolate's step becomes a change with the record before and after", () => {
  const cache = new RoomCache();
  const a = shape("shape:a", { x: 1 });
  cache.replace({
    meta: { documentClock: 1, tombstoneHistoryStartsAtClock: 0, schema: null },
    records: [{ state: a, lastChangedClock: 1 }],
    tombstones: new Map(),
  });
  const a2 = shape("shape:a", { x: 2 });
  const b = shape("shape:b");
  const forward = cache.applyStep({
    clock: 2,
    puts: [{ state: a2, lastChangedClock: 2 }, { state: b, lastChangedClock: 2 }],
    deletes: ["shape:never"],
  });
  assert.ok(forward);
  assert.deepEqual(forward.puts["shape:a"], [a, a2]);
  assert.deepEqual(forward.puts["shape:b"], b);
  assert.deepEqual(forward.deletes, [], "deleting what was not here changes nothing");
  assert.equal(cache.clock, 2);
  assert.equal(cache.tombstones.get("shape:never"), 2);
});

Deno.test("RoomCache: a step's patches apply to the records before; one of a record not here applies nothing", () => {
  const cache = new RoomCache();
  const props = { ...(shape("shape:a").props as Record<string, unknown>), text: "hi" };
  const a = shape("shape:a", { x: 1, props });
  cache.replace({
    meta: { documentClock: 1, tombstoneHistoryStartsAtClock: 0, schema: null },
    records: [{ state: a, lastChangedClock: 1 }],
    tombstones: new Map(),
  });
  const a2 = { ...a, x: 5, props: { ...props, text: "hi there" } };
  const diff = diffRecord(a, a2)!;
  const chars = JSON.stringify(a2).length;
  // A patch of a record the cache lacks: nothing changes, whatever else the step holds.
  const b = shape("shape:b");
  const missing = cache.applyStep({
    clock: 2,
    puts: [{ state: b, lastChangedClock: 2 }],
    deletes: [],
    patches: [{ id: "shape:zzz", diff, chars }],
  });
  assert.equal(missing, undefined);
  assert.equal(cache.clock, 1);
  assert.equal(cache.records.has("shape:b"), false);
  // The patch alone, as a notice carries it: the record after, and the sessions get the same diff.
  const forward = cache.applyStep({
    clock: 2,
    puts: [],
    deletes: [],
    patches: [{ id: "shape:a", diff, chars }],
  });
  assert.ok(forward);
  assert.deepEqual(cache.records.get("shape:a"), { state: a2, lastChangedClock: 2, chars });
  assert.deepEqual(forward.puts["shape:a"], [a, a2, diff]);
  assert.deepEqual(toNetworkDiff(forward), { "shape:a": ["patch", diff] });
  // Protocol 7 clients get no string appends: the diff is computed again for them.
  const legacy = toNetworkDiff(forward, true)["shape:a"]!;
  assert.deepEqual(legacy, ["patch", diffRecord(a, a2, true)]);
  assert.notDeepEqual(legacy, ["patch", diff]);
});

// ---------------------------------------------------------------------------------------------
// The handshake

Deno.test("negotiate: protocol versions and schemas a client may connect with", () => {
  const request = (overrides: Record<string, unknown>) =>
    connectRequest(overrides) as unknown as ConnectRequest;
  const current = negotiate(request({}), schema);
  assert.ok(current.ok && current.client.supportsStringAppend && !current.legacyRejection);
  assert.equal(current.client.schema, schema.serialized, "the server's own schema object");
  const v7 = negotiate(request({ protocolVersion: 7 }), schema);
  assert.ok(v7.ok && !v7.client.supportsStringAppend && !v7.legacyRejection);
  const v5 = negotiate(request({ protocolVersion: 5 }), schema);
  assert.ok(v5.ok && v5.legacyRejection);
  const v4 = negotiate(request({ protocolVersion: 4 }), schema);
  assert.deepEqual(v4, { ok: false, reason: "CLIENT_TOO_OLD", legacyRejection: false });
  const v9 = negotiate(request({ protocolVersion: 9 }), schema);
  assert.deepEqual(v9, { ok: false, reason: "SERVER_TOO_OLD", legacyRejection: false });
  const noSchema = negotiate(request({ schema: undefined }), schema);
  assert.deepEqual(noSchema, { ok: false, reason: "CLIENT_TOO_OLD", legacyRejection: false });
  const newer = structuredClone(schema.serialized) as { sequences: Record<string, number> };
  newer.sequences["com.tldraw.shape"] = 999;
  const future = negotiate(request({ schema: newer }), schema);
  assert.deepEqual(future, { ok: false, reason: "SERVER_TOO_OLD", legacyRejection: false });
});

Deno.test("Peers: a room just loaded is not quiet; alone after settling it is, until a peer shows", async () => {
  let found = 0;
  const peers = new Peers(1_000, 60, () => found++);
  assert.equal(peers.present, false);
  assert.equal(peers.quiet, false, "loaded just now: it cannot know yet");
  await sleep(90);
  assert.equal(peers.quiet, true);
  peers.seen();
  assert.equal(found, 1);
  assert.equal(peers.present, true);
  assert.equal(peers.quiet, false);
  peers.seen();
  assert.equal(found, 1, "found once, not on every sign");
});

Deno.test("commitNotices: a commit's steps split over notices in order, each fitting the bus; what does not fit is read from the log", () => {
  const step = (clock: number, extra: Record<string, unknown> = {}): LogStep => ({
    clock,
    puts: [{ state: geoShape(`shape:${clock}`, extra) as WireRecord, lastChangedClock: clock }],
    deletes: [],
    origin: `o${clock}`,
  });
  const envelope = (body: Json) =>
    encodeEnvelope({ topic: "tldraw:room", origin: "isolate-0", seq: 1, body });
  const parsed = (bodies: Json[]) => bodies.map((body) => parseClockNotice(body)!);

  // Small: one notice, as before.
  const one = parsed(commitNotices(3, "w", [step(2), step(3)]));
  assert.deepEqual(one.map((n) => [n.clock, n.steps?.map((s) => s.clock)]), [[3, [2, 3]]]);

  // 20 steps of about 500 bytes: several notices, each within the bus's limit, contiguous.
  const many = Array.from({ length: 20 }, (_, i) => step(i + 1));
  const bodies = commitNotices(20, "w", many);
  assert.ok(bodies.length > 1 && bodies.length <= MAX_COMMIT_NOTICES, `${bodies.length} notices`);
  for (const body of bodies) envelope(body); // throws when too big
  const notices = parsed(bodies);
  assert.deepEqual(notices.flatMap((n) => n.steps!.map((s) => s.clock)), many.map((s) => s.clock));
  for (const n of notices) assert.equal(n.clock, n.steps!.at(-1)!.clock);
  assert.equal(notices.at(-1)!.clock, 20);
  assert.ok(notices.every((n) => n.writer === "w"));
  assert.equal(notices[0]!.steps![0]!.origin, "o1");

  // A step too big for a notice: the steps before it go, then the clock alone.
  const big = step(3, { meta: { text: "x".repeat(5_000) } });
  const cut = parsed(commitNotices(4, "w", [step(1), step(2), big, step(4)]));
  assert.deepEqual(cut.map((n) => [n.clock, n.steps?.map((s) => s.clock)]), [[2, [1, 2]], [
    4,
    undefined,
  ]]);

  // More than MAX_COMMIT_NOTICES notices' worth: the last one is the clock alone.
  const lots = Array.from({ length: 100 }, (_, i) => step(i + 1));
  const capped = parsed(commitNotices(100, "w", lots));
  assert.equal(capped.length, MAX_COMMIT_NOTICES);
  assert.deepEqual(capped.at(-1), { clock: 100, writer: "w" });
  const carried = capped.flatMap((n) => n.steps?.map((s) => s.clock) ?? []);
  assert.deepEqual(carried, lots.slice(0, carried.length).map((s) => s.clock));
});

Deno.test("commitNotices: records changed by a patch go as the patch, a fraction of the record's size", () => {
  const before = geoShape("shape:a") as WireRecord;
  const after = { ...before, x: 12.5, y: 40 };
  const created = geoShape("shape:new") as WireRecord;
  const diff = diffRecord(before, after)!;
  const chars = JSON.stringify(after).length;
  const step: LogStep = {
    clock: 7,
    puts: [{ state: after, lastChangedClock: 7 }, { state: created, lastChangedClock: 7 }],
    deletes: ["shape:gone"],
    origin: "o7",
    patches: [{ id: "shape:a", diff, chars }],
  };
  const [body, ...rest] = commitNotices(7, "w", [step]);
  assert.equal(rest.length, 0);
  const notice = parseClockNotice(body!)!;
  assert.deepEqual(notice.steps, [{
    clock: 7,
    puts: [{ state: created, lastChangedClock: 7 }],
    deletes: ["shape:gone"],
    origin: "o7",
    patches: [{ id: "shape:a", diff, chars }],
  }]);
  const withWhole = JSON.stringify(commitNotices(7, "w", [{ ...step, patches: undefined }]));
  const withPatch = JSON.stringify(body);
  assert.ok(
    withPatch.length + chars / 2 < withWhole.length,
    `${withPatch.length} vs ${withWhole.length} bytes`,
  );
  // A malformed patch makes the notice a clock alone (the receiver reads the log).
  const broken = structuredClone(body) as { steps: { u: unknown[][] }[] };
  broken.steps[0]!.u[0]![1] = { x: null };
  assert.deepEqual(parseClockNotice(broken as unknown as Json), { clock: 7, writer: "w" });
});

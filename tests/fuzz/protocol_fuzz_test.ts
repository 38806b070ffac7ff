/**
 * Protocol fuzzing: seeded random malformed and adversarial frames on the tldraw, user-data and
 * LiveStore sockets, each beside a canary session that keeps writing. Every frame here is one the
 * server must refuse (for the sender only), so at the end the canary's changes are all
 * acknowledged, the server still answers, and a fresh read of the room, the user's data or the
 * store is exactly what the canary wrote. Seeds: a fixed list; `FUZZ_SEEDS=<n>` runs n random ones,
 * `FUZZ_ROUNDS=<n>` longer, `FUZZ_SEED=<seed>` replays one (a failure prints its seed).
 */
import assert from "node:assert/strict";
import { testConfig } from "../../config.ts";
import { fuzzRounds, fuzzSeeds, type Random, withSeed } from "../helpers/fuzz.ts";
import { event, RawLivestoreSocket } from "../helpers/livestore_socket.ts";
import { connectRaw, geoShape, type RawSocket } from "../helpers/raw_socket.ts";
import { fileRow, startAuthServer } from "../helpers/user_sync_client.ts";

const SEEDS = fuzzSeeds([1, 2, 3]);
const ROUNDS = fuzzRounds(40);
/** Small, so that oversized frames are cheap to send. */
const MAX_MESSAGE_BYTES = 64 * 1024;

function fuzzConfig() {
  const base = testConfig();
  return {
    limits: { maxMessageBytes: MAX_MESSAGE_BYTES },
    config: { livestore: { ...base.livestore, anonymous: true, pushesPerMinute: 0 } },
  };
}

/** The server still answers its health check. */
async function assertHealthy(url: string): Promise<void> {
  const health = await fetch(`${url}/health`);
  await health.body?.cancel();
  assert.equal(health.status, 200);
}

/** A frame no protocol accepts: garbage text, bytes, wrong JSON shapes, or far too large. */
function garbage(random: Random): string | Uint8Array {
  switch (random.int(0, 5)) {
    case 0:
      return random.text(random.int(0, 200));
    case 1:
      return random.bytes(random.int(1, 300));
    case 2:
      return JSON.stringify(random.json(3));
    case 3:
      return JSON.stringify({ type: random.text(6), ...(random.json(1) as object) });
    case 4:
      return `{"type":"${"x".repeat(MAX_MESSAGE_BYTES + random.int(1, 1000))}"}`;
    default:
      return `${random.int(0, 99)}_${random.text(random.int(0, 40))}`;
  }
}

/** A tldraw frame the server must refuse: garbage, or a push that may never be stored. */
function tldrawAttack(random: Random, victims: string[], clock: number): string | Uint8Array {
  const victim = random.pick(victims);
  const fresh = `shape:evil-${random.int(0, 1e9)}`;
  const push = (diff: Record<string, unknown>, presence?: unknown) =>
    JSON.stringify({
      type: "push",
      clientClock: clock,
      diff,
      ...(presence === undefined ? {} : { presence }),
    });
  switch (random.int(0, 9)) {
    case 0:
      return push({ [fresh]: ["put", geoShape(fresh, { x: random.pick(["1", null, {}]) })] });
    case 1:
      return push({ [fresh]: ["put", geoShape(`shape:other-${random.int(0, 99)}`)] });
    case 2:
      return push({ [victim]: ["patch", { id: ["put", random.pick(victims)] }] });
    case 3:
      return push({ [victim]: ["patch", { id: ["put", fresh] }, random.json(1)] });
    case 4:
      return push({
        "camera:x": ["put", { id: "camera:x", typeName: "camera", x: 0, y: 0, z: 1, meta: {} }],
      });
    case 5:
      return push({ [victim]: ["patch", { props: ["put", random.json(2)] }] });
    case 6:
      // A valid op first: the whole push is refused, so it must not be kept either.
      return push({
        [victim]: ["patch", { x: ["put", random.int(1, 1000)] }],
        [fresh]: ["put", { ...geoShape(fresh), typeName: random.text(5) }],
      });
    case 7:
      return push({ [victim]: [random.text(4), random.json(1)] });
    case 8:
      return JSON.stringify({ type: "connect", protocolVersion: random.int(-5, 7), schema: {} });
    default:
      return garbage(random);
  }
}

Deno.test("fuzz: tldraw rooms refuse adversarial frames; the canary's room is exactly what it wrote", async (t) => {
  for (const seed of SEEDS) {
    await t.step(`seed ${seed}`, () =>
      withSeed("fuzz: tldraw", seed, async (random) => {
        await using server = await startAuthServer(fuzzConfig());
        const url = `${server.wsUrl}/r/fuzz-${seed}`;
        const canary = await connectRaw(`${url}?sessionId=canary`);
        await using _canary = canary.socket;
        const written: string[] = [];
        let canaryClock = 0;
        const canaryWrite = async () => {
          const id = `shape:canary-${written.length}`;
          const clientClock = canaryClock++;
          canary.socket.send({
            type: "push",
            clientClock,
            diff: { [id]: ["put", geoShape(id, { x: written.length })] },
          });
          const result = await canary.socket.waitForEvent((e) =>
            e.type === "push_result" && e.clientClock === clientClock
          );
          assert.equal(result.action, "commit", `canary push ${clientClock}`);
          written.push(id);
        };
        await canaryWrite();
        let attacker: RawSocket | undefined;
        try {
          for (let round = 0; round < ROUNDS; round++) {
            if (!attacker || attacker.ws.readyState !== WebSocket.OPEN) {
              await attacker?.[Symbol.asyncDispose]();
              attacker = (await connectRaw(`${url}?sessionId=attacker-${round}`)).socket;
            }
            attacker.send(tldrawAttack(random, written, round));
            if (random.chance(0.5)) await canaryWrite();
          }
          await canaryWrite();
        } finally {
          await attacker?.[Symbol.asyncDispose]();
        }
        // A fresh read of the room: exactly the canary's shapes, as it wrote them.
        const late = await connectRaw(`${url}?sessionId=reader`);
        await using _late = late.socket;
        const shapes = Object.entries(late.reply.diff as Record<string, [string, { x: number }]>)
          .filter(([id]) => id.startsWith("shape:"));
        assert.deepEqual(shapes.map(([id]) => id).sort(), [...written].sort());
        for (const [id, [, record]] of shapes) {
          assert.deepEqual(record, geoShape(id, { x: written.indexOf(id) }));
        }
        await assertHealthy(server.url);
      }));
  }
});

Deno.test("fuzz: the user-data channel refuses adversarial frames; the canary's data is exactly what it wrote", async (t) => {
  for (const seed of SEEDS) {
    await t.step(`seed ${seed}`, () =>
      withSeed("fuzz: user-data", seed, async (random) => {
        await using server = await startAuthServer(fuzzConfig());
        await using alice = await server.connect("alice");
        await alice.initialData();
        const names = new Map<string, string>();
        let mutation = 0;
        const canaryWrite = async () => {
          const id = `alice-${names.size}`;
          // Postgres text holds no NUL (a name with one is refused with bad_request).
          const name = `File ${names.size} ${random.text(3).replaceAll("\u0000", "0")}`;
          const outcome = await alice.mutate(`m${mutation++}`, [
            { table: "file", event: "insert", row: fileRow(id, "alice", { name }) },
            { table: "file_state", event: "insert", row: { userId: "alice", fileId: id } },
          ]);
          assert.equal(outcome.type, "commit", JSON.stringify(outcome));
          names.set(id, name);
        };
        await canaryWrite();
        let mallory = await server.connect("mallory");
        await mallory.initialData();
        try {
          for (let round = 0; round < ROUNDS; round++) {
            if (mallory.socket.readyState !== WebSocket.OPEN) {
              await mallory.close();
              mallory = await server.connect("mallory");
              await mallory.initialData();
            }
            const target = random.pick([...names.keys()]);
            const mutate = (updates: unknown) =>
              JSON.stringify({ type: "mutate", mutationId: `x${round}`, updates });
            const attacks = [
              () => garbage(random),
              () => mutate(random.json(2)),
              () =>
                mutate([{ table: "user", event: "update", row: { id: "alice", name: "pwned" } }]),
              () =>
                mutate([{
                  table: "file",
                  event: random.pick(["update", "delete"]),
                  row: { id: target, name: "pwned", isDeleted: true },
                }]),
              () => mutate([{ table: "file", event: "insert", row: fileRow(target, "alice") }]),
              () =>
                mutate([{
                  table: "file_state",
                  event: "insert",
                  row: { userId: "alice", fileId: target },
                }]),
              () =>
                mutate([{
                  table: "file",
                  event: "insert",
                  row: fileRow(`m-${round}`, "mallory", { createSource: `f/${target}` }),
                }]),
              () => mutate([{ table: random.text(5), event: "insert", row: random.json(1) }]),
            ];
            mallory.send(random.pick(attacks)());
            if (random.chance(0.5)) await canaryWrite();
          }
          await canaryWrite();
        } finally {
          await mallory.close();
        }
        // A fresh read of alice's data: exactly her files, as she named them; mallory has none.
        await using reader = await server.connect("alice");
        const data = (await reader.initialData()).initialData as unknown as {
          user: { name: string };
          files: { id: string; name: string; isDeleted: boolean }[];
        };
        assert.deepEqual(
          data.files.map(({ id, name, isDeleted }) => ({ id, name, isDeleted })),
          [...names].map(([id, name]) => ({ id, name, isDeleted: false })).sort((a, b) =>
            a.id.localeCompare(b.id)
          ),
        );
        assert.notEqual(data.user.name, "pwned");
        const malloryFiles = await server.deps.database.db.selectFrom("file").select("id")
          .where("ownerId", "=", "mallory").execute();
        assert.deepEqual(malloryFiles, []);
        await assertHealthy(server.url);
      }));
  }
});

Deno.test("fuzz: LiveStore refuses adversarial frames; the store holds exactly the canary's events", async (t) => {
  for (const seed of SEEDS) {
    await t.step(`seed ${seed}`, () =>
      withSeed("fuzz: livestore", seed, async (random) => {
        await using server = await startAuthServer(fuzzConfig());
        const url = `${server.wsUrl}/livestore`;
        const storeId = `fuzz-${seed}`;
        await using canary = await RawLivestoreSocket.open(url, storeId);
        let head = 0;
        const canaryWrite = async () => {
          const exit = await canary.exit(canary.push(storeId, [event(head + 1, "canary")]));
          assert.deepEqual(exit.exit, { _tag: "Success", value: {} }, `canary event ${head + 1}`);
          head++;
        };
        await canaryWrite();
        let attacker = await RawLivestoreSocket.open(url, storeId);
        try {
          for (let round = 0; round < ROUNDS; round++) {
            if (attacker.socket.readyState !== WebSocket.OPEN) {
              await attacker.close();
              attacker = await RawLivestoreSocket.open(url, storeId);
            }
            const far = random.pick([-7, 1e12, head + 1e6]);
            const evil = event(head + 1, "evil");
            const attacks: (() => unknown)[] = [
              () => {
                const frame = garbage(random);
                attacker.socket.send(frame);
              },
              // Events that can never be next: not dense, a parent that is not the head, another
              // store, a made-up backend.
              () => attacker.push(storeId, [{ ...evil, seqNum: head + 3 }]),
              () => attacker.push(storeId, [{ ...evil, seqNum: far + 1, parentSeqNum: far }]),
              () => attacker.push(`${storeId}-other`, [evil]),
              () => attacker.push(storeId, [evil], `made-up-${round}`),
              () => attacker.push(storeId, [evil, event(head + 5, "evil")]),
              () =>
                attacker.request(
                  random.pick(["SyncWsRpc.Push", "SyncWsRpc.Pull", random.text(5)]),
                  random.json(2),
                ),
              () =>
                attacker.pull(storeId, {
                  cursor: {
                    _tag: "Some",
                    value: { backendId: random.text(8), eventSequenceNumber: 0 },
                  },
                }),
            ];
            random.pick(attacks)();
            if (random.chance(0.5)) await canaryWrite();
          }
          await canaryWrite();
        } finally {
          await attacker.close();
        }
        // A fresh read of the store: exactly the canary's events, in order.
        await using reader = await RawLivestoreSocket.open(url, storeId);
        const pull = reader.pull(storeId);
        const seen: { seqNum: number; clientId: string }[] = [];
        for (;;) {
          const chunk = await reader.chunk(pull);
          seen.push(
            ...chunk.batch.map((e: { eventEncoded: { seqNum: number; clientId: string } }) => ({
              seqNum: e.eventEncoded.seqNum,
              clientId: e.eventEncoded.clientId,
            })),
          );
          if (chunk.pageInfo._tag === "NoMore") break;
        }
        assert.deepEqual(
          seen,
          Array.from({ length: head }, (_, i) => ({ seqNum: i + 1, clientId: "canary" })),
        );
        await assertHealthy(server.url);
      }));
  }
});

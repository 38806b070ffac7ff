/**
 * One contract, every bus: messages reach other endpoints on the same topic, never the sender, in
 * publish order per sender; unsubscribing stops delivery; oversized messages are refused.
 */
import assert from "node:assert/strict";
import type { Bus, Json } from "../../sync/bus/bus.ts";
import { BusMessageTooLarge, MAX_BUS_MESSAGE_BYTES } from "../../sync/bus/bus.ts";
import { BroadcastChannelBus } from "../../sync/bus/broadcast_channel_bus.ts";
import { CombinedBus } from "../../sync/bus/combined_bus.ts";
import { MemoryBusHub } from "../../sync/bus/memory_bus.ts";
import { linkWorkers, PortBus } from "../../sync/bus/port_bus.ts";
import { PostgresBus } from "../../sync/bus/postgres_bus.ts";
import { openTestDatabase, TEST_ENGINE } from "../helpers/db.ts";

interface Pair extends AsyncDisposable {
  a: Bus;
  b: Bus;
}

const implementations: Record<string, () => Promise<Pair>> = {
  memory: () => {
    const hub = new MemoryBusHub();
    const a = hub.connect("a");
    const b = hub.connect("b");
    return Promise.resolve({
      a,
      b,
      async [Symbol.asyncDispose]() {
        await a.close();
        await b.close();
      },
    });
  },
  broadcast_channel: () => {
    const namespace = `test-${crypto.randomUUID()}`;
    const a = new BroadcastChannelBus({ namespace, id: "a" });
    const b = new BroadcastChannelBus({ namespace, id: "b" });
    return Promise.resolve({
      a,
      b,
      async [Symbol.asyncDispose]() {
        await a.close();
        await b.close();
      },
    });
  },
  message_ports: () => {
    // The supervisor's wiring, with both ends in this isolate.
    const [aPorts, bPorts] = linkWorkers(2);
    const a = new PortBus(aPorts!, "a");
    const b = new PortBus(bPorts!, "b");
    return Promise.resolve({
      a,
      b,
      async [Symbol.asyncDispose]() {
        await a.close();
        await b.close();
      },
    });
  },
  [`postgres_notify[${TEST_ENGINE}]`]: async () => {
    const database = await openTestDatabase({ migrated: false });
    const a = await PostgresBus.open(database.notifier, { id: "a" });
    const b = await PostgresBus.open(database.notifier, { id: "b" });
    return {
      a,
      b,
      async [Symbol.asyncDispose]() {
        await a.close();
        await b.close();
        await database[Symbol.asyncDispose]();
      },
    };
  },
  combined: () => {
    const hub = new MemoryBusHub();
    const namespace = `test-${crypto.randomUUID()}`;
    const a = new CombinedBus([hub.connect("a"), new BroadcastChannelBus({ namespace, id: "a" })]);
    const b = new CombinedBus([hub.connect("b"), new BroadcastChannelBus({ namespace, id: "b" })]);
    return Promise.resolve({
      a,
      b,
      async [Symbol.asyncDispose]() {
        await a.close();
        await b.close();
      },
    });
  },
};

async function until(check: () => boolean, what: string, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 100));

for (const [name, open] of Object.entries(implementations)) {
  Deno.test(`bus ${name}: delivers to others on the topic, in order, never to the sender`, async () => {
    await using pair = await open();
    const atA: Json[] = [];
    const atB: Json[] = [];
    const atBOther: Json[] = [];
    const stopA = pair.a.subscribe("room:1", (body) => atA.push(body));
    const stopB = pair.b.subscribe("room:1", (body, envelope) => {
      assert.equal(envelope.origin, "a");
      assert.equal(envelope.topic, "room:1");
      atB.push(body);
    });
    const stopB2 = pair.b.subscribe("room:2", (body) => atBOther.push(body));
    for (let clock = 1; clock <= 20; clock++) await pair.a.publish("room:1", { clock });
    await until(() => atB.length === 20, "20 messages at b");
    assert.deepEqual(atB, Array.from({ length: 20 }, (_, i) => ({ clock: i + 1 })));
    await settle();
    assert.deepEqual(atA, []);
    assert.deepEqual(atBOther, []);
    stopA();
    stopB();
    stopB2();
  });

  Deno.test(`bus ${name}: every subscriber gets each message once; unsubscribe stops delivery`, async () => {
    await using pair = await open();
    const first: Json[] = [];
    const second: Json[] = [];
    const stopFirst = pair.b.subscribe("t", (body) => first.push(body));
    const stopSecond = pair.b.subscribe("t", (body) => second.push(body));
    await pair.a.publish("t", "one");
    await until(() => first.length === 1 && second.length === 1, "one message each");
    stopFirst();
    await pair.a.publish("t", "two");
    await until(() => second.length === 2, "second message");
    await settle();
    assert.deepEqual(first, ["one"]);
    assert.deepEqual(second, ["one", "two"]);
    stopSecond();
  });

  Deno.test(`bus ${name}: refuses messages over the size limit`, async () => {
    await using pair = await open();
    await assert.rejects(
      pair.a.publish("t", "x".repeat(MAX_BUS_MESSAGE_BYTES)),
      BusMessageTooLarge,
    );
  });
}

Deno.test("memory bus: the drop rule loses messages (fault injection)", async () => {
  const hub = new MemoryBusHub();
  const a = hub.connect("a");
  const b = hub.connect("b");
  const got: Json[] = [];
  const stop = b.subscribe("t", (body) => got.push(body));
  hub.setDropRule((envelope) => (envelope.body as { n: number }).n % 2 === 0);
  for (let n = 1; n <= 4; n++) await a.publish("t", { n });
  await until(() => got.length === 2, "odd messages");
  await settle();
  assert.deepEqual(got, [{ n: 1 }, { n: 3 }]);
  assert.equal(hub.dropped, 2);
  stop();
  await a.close();
  await b.close();
});

Deno.test(`[${TEST_ENGINE}] postgres bus: publishes made while a NOTIFY is in flight share the next ones, in order`, async () => {
  await using database = await openTestDatabase({ migrated: false });
  let notifies = 0;
  const counting = {
    listen: database.notifier.listen.bind(database.notifier),
    notify(channel: string, payload: string) {
      notifies++;
      return database.notifier.notify(channel, payload);
    },
  };
  const a = await PostgresBus.open(counting, { id: "a" });
  const b = await PostgresBus.open(database.notifier, { id: "b" });
  try {
    const received: number[] = [];
    const ownEcho: number[] = [];
    b.subscribe("presence", (body) => received.push((body as { n: number }).n));
    a.subscribe("presence", (body) => ownEcho.push((body as { n: number }).n));
    // 200 presence-sized messages at once: ~600 bytes each, about a dozen per NOTIFY.
    const padding = "p".repeat(550);
    await Promise.all(
      Array.from({ length: 200 }, (_, n) => a.publish("presence", { n, padding })),
    );
    const deadline = Date.now() + 5_000;
    while (received.length < 200 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.deepEqual(received, Array.from({ length: 200 }, (_, n) => n));
    assert.ok(notifies <= 25, `${notifies} NOTIFYs for 200 messages`);
    assert.deepEqual(ownEcho, [], "a bus never hears itself");
  } finally {
    await a.close();
    await b.close();
  }
});

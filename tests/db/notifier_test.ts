import assert from "node:assert/strict";
import { MAX_NOTIFY_PAYLOAD_BYTES } from "../../db/database.ts";
import { openTestDatabase, TEST_ENGINE } from "../helpers/db.ts";

const engine = `[${TEST_ENGINE}]`;

function nextMessage(messages: string[], count: number, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const poll = () => {
      if (messages.length >= count) return resolve();
      if (Date.now() > deadline) {
        return reject(new Error(`only ${messages.length} messages arrived`));
      }
      setTimeout(poll, 10);
    };
    poll();
  });
}

Deno.test(`${engine} LISTEN/NOTIFY delivers payloads in order until unlisten`, async () => {
  await using database = await openTestDatabase({ migrated: false });
  const received: string[] = [];
  const other: string[] = [];
  const stop = await database.notifier.listen("room_events", (payload) => received.push(payload));
  const stopOther = await database.notifier.listen(
    "other_channel",
    (payload) => other.push(payload),
  );
  await database.notifier.notify("room_events", "one");
  await database.notifier.notify("room_events", JSON.stringify({ room: "r1", clock: 2 }));
  await nextMessage(received, 2);
  assert.deepEqual(received, ["one", '{"room":"r1","clock":2}']);
  assert.deepEqual(other, []);
  await stop();
  await database.notifier.notify("room_events", "after unlisten");
  await database.notifier.notify("other_channel", "marker");
  await nextMessage(other, 1);
  assert.deepEqual(received, ["one", '{"room":"r1","clock":2}']);
  await stopOther();
});

Deno.test(`${engine} notifications committed in a transaction arrive; rolled back ones do not`, async () => {
  await using database = await openTestDatabase({ migrated: false });
  const received: string[] = [];
  const stop = await database.notifier.listen("tx_events", (payload) => received.push(payload));
  await database.rawTransaction(async (session) => {
    await session.query("select pg_notify('tx_events', 'committed')");
  });
  await database.rawTransaction(async (session) => {
    await session.query("select pg_notify('tx_events', 'rolled back')");
    throw new Error("abort");
  }).catch(() => {});
  await database.notifier.notify("tx_events", "marker");
  await nextMessage(received, 2);
  assert.deepEqual(received, ["committed", "marker"]);
  await stop();
});

Deno.test(`${engine} bad channel names and oversized payloads are refused`, async () => {
  await using database = await openTestDatabase({ migrated: false });
  await assert.rejects(
    database.notifier.notify("Bad-Name; drop", "x"),
    /invalid notification channel/,
  );
  await assert.rejects(database.notifier.listen("", () => {}), /invalid notification channel/);
  await assert.rejects(
    database.notifier.notify("ok_channel", "x".repeat(MAX_NOTIFY_PAYLOAD_BYTES + 1)),
    /exceeds/,
  );
});

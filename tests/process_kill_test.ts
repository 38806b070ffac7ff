/**
 * `kill -9` of a server process in the middle of a stream of pushes. Two processes share one KV file
 * (and, with DATABASE_URL, one database and the Postgres bus; on PGlite they cannot share a
 * database, so each has its own and no bus: the clock poll still converges them).
 */
import assert from "node:assert/strict";
import { pushUntilStopped } from "./helpers/acked_pushes.ts";
import { createShapeId, type TLRecord } from "@tldraw/tlschema";
import { until } from "./helpers/fake_socket.ts";
import { openTestDatabase, TEST_DATABASE_URL } from "./helpers/db.ts";
import { connectRaw, geoShape, type RawSocket } from "./helpers/raw_socket.ts";
import { type ServerProcess, startServerProcess } from "./helpers/server_process.ts";
import { connectClient, documentRecords, type TestClient } from "./helpers/tldraw_client.ts";

Deno.test("kill -9 of a server process: acknowledged pushes survive; its clients move and converge", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "kill9-" });
  await using database = TEST_DATABASE_URL
    ? await openTestDatabase({ migrated: false })
    : undefined;
  const envFor = (n: number): Record<string, string> =>
    database
      ? { DATA_DIR: dataDir, DATABASE_URL: database.url!, BUS: "postgres" }
      : { DATA_DIR: dataDir, PGLITE_DIR: `${dataDir}/pg-${n}`, BUS: "none" };
  const servers: ServerProcess[] = [];
  const clients: TestClient[] = [];
  const pushers: RawSocket[] = [];
  let stop = false;
  try {
    // One after the other: the second finds the migrations applied.
    servers.push(await startServerProcess(envFor(0)));
    servers.push(await startServerProcess(envFor(1)));
    const url = (n: number) => `ws://127.0.0.1:${servers[n]!.port}/r/kill9`;
    let victimDead = false;
    clients.push(connectClient(url(0)));
    clients.push(connectClient(() => victimDead ? url(0) : url(1)));
    await Promise.all(clients.map((c) => c.loaded));
    for (let i = 0; i < 2; i++) pushers.push((await connectRaw(url(i))).socket);
    const acked = new Set<string>();
    const streams = pushers.map((socket, i) =>
      pushUntilStopped(socket, `k${i}-`, acked, () => stop)
    );
    for (let n = 0; n < 5; n++) {
      clients.forEach((c, i) =>
        c.store.put([geoShape(createShapeId(`kc${i}-${n}`)) as unknown as TLRecord])
      );
      await new Promise((resolve) => setTimeout(resolve, 30));
    }
    await until(() => acked.size >= 20, 15_000);
    victimDead = true;
    await servers[1]!.kill();
    await new Promise((resolve) => setTimeout(resolve, 300));
    stop = true;
    await Promise.all(streams);

    clients[1]!.store.put([geoShape(createShapeId("after-kill")) as unknown as TLRecord]);
    const same = () => {
      const first = JSON.stringify(documentRecords(clients[0]!.store));
      return clients.every((c) => JSON.stringify(documentRecords(c.store)) === first);
    };
    await until(
      () => clients.every((c) => c.store.has(createShapeId("after-kill"))) && same(),
      15_000,
    );
    const { socket, reply } = await connectRaw(url(0));
    await socket.close();
    const ids = new Set(Object.keys(reply.diff));
    for (const id of acked) assert.ok(ids.has(id), `acknowledged ${id} lost`);
    for (let i = 0; i < 2; i++) {
      for (let n = 0; n < 5; n++) assert.ok(ids.has(createShapeId(`kc${i}-${n}`)));
    }
  } finally {
    stop = true;
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all(pushers.map((p) => p.close()));
    await Promise.all(servers.map((s) => s.stop()));
    await Deno.remove(dataDir, { recursive: true });
  }
});

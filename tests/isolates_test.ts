import assert from "node:assert/strict";
import { loadConfig } from "../config.ts";
import { startIsolates } from "../isolates.ts";
import { silentLogger } from "../log.ts";
import { openTestDatabase, TEST_DATABASE_URL } from "./helpers/db.ts";

Deno.test("--isolates 2: two Workers share the port and the database; each has its own port", async () => {
  const dataDir = await Deno.makeTempDir();
  const database = TEST_DATABASE_URL ? await openTestDatabase({ migrated: false }) : undefined;
  try {
    const config = loadConfig({
      PORT: "0",
      DATA_DIR: dataDir,
      LOG_LEVEL: "error",
      ...(database ? { DATABASE_URL: database.url! } : {}),
    }, { isolates: 2 });
    const isolates = await startIsolates(config, silentLogger);
    try {
      assert.equal(isolates.directPorts.length, 2);
      assert.notEqual(isolates.directPorts[0], isolates.directPorts[1]);
      for (const port of [isolates.port, ...isolates.directPorts]) {
        const response = await fetch(`http://127.0.0.1:${port}/health`);
        assert.equal(response.status, 200, `port ${port}`);
        assert.equal((await response.json()).status, "ok");
      }
    } finally {
      await isolates.shutdown("test");
    }
    // Stopped: nothing answers any more.
    await assert.rejects(fetch(`http://127.0.0.1:${isolates.directPorts[0]}/health`));
  } finally {
    await database?.[Symbol.asyncDispose]();
    await Deno.remove(dataDir, { recursive: true });
  }
});

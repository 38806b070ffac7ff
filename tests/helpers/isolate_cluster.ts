/**
 * N real isolates (Web Workers started by `startIsolates`) on a temporary KV file and a test
 * database, for multi-isolate room tests. Each isolate is reachable on its own port.
 *
 * @module
 */
import { loadConfig } from "../../config.ts";
import { type RunningIsolates, startIsolates } from "../../isolates.ts";
import { silentLogger } from "../../log.ts";
import { openTestDatabase, TEST_DATABASE_URL, type TestDatabase } from "./db.ts";

/** A running set of isolates; dispose to stop them and remove their data. */
export interface Cluster extends AsyncDisposable {
  isolates: RunningIsolates;
  /** `ws://…/r/<roomId>` on isolate `index`. */
  roomUrl(index: number, roomId: string): string;
}

/** Starts `count` isolates; `env` adds configuration (e.g. `ROOM_SESSION_TTL_MS`). */
export async function startCluster(
  count: number,
  env: Record<string, string> = {},
): Promise<Cluster> {
  const dataDir = await Deno.makeTempDir({ prefix: "cluster-" });
  let database: TestDatabase | undefined;
  try {
    database = TEST_DATABASE_URL ? await openTestDatabase({ migrated: false }) : undefined;
    const config = loadConfig({
      PORT: "0",
      DATA_DIR: dataDir,
      LOG_LEVEL: "error",
      ...(database ? { DATABASE_URL: database.url! } : {}),
      ...env,
    }, { isolates: count });
    const isolates = await startIsolates(config, silentLogger);
    const db = database;
    return {
      isolates,
      roomUrl: (index, roomId) => `ws://127.0.0.1:${isolates.directPorts[index]}/r/${roomId}`,
      [Symbol.asyncDispose]: async () => {
        try {
          await isolates.shutdown("test done");
        } finally {
          await db?.[Symbol.asyncDispose]();
          await Deno.remove(dataDir, { recursive: true }).catch(() => {});
        }
      },
    };
  } catch (error) {
    await database?.[Symbol.asyncDispose]();
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    throw error;
  }
}

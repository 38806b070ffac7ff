/**
 * A real Postgres server through postgres.js (pooled), with kysely's postgres.js dialect.
 *
 * @module
 */
import { Kysely } from "kysely";
import { PostgresJSDialect } from "kysely-postgres-js";
import postgres from "postgres";
import {
  assertChannelName,
  assertNotifyPayload,
  countingDialect,
  type Database,
  InFlight,
  type Notifier,
  type SqlSession,
  withTimeout,
} from "./database.ts";
import type { DB } from "./schema.ts";

/** Options for {@link openPostgres}. */
export interface PostgresOptions {
  url: string;
  poolSize?: number;
}

const INT8_OID = 20;

/** Opens a pooled connection to a Postgres server. Connections are made lazily, on first use. */
export function openPostgres({ url, poolSize = 10 }: PostgresOptions): Database {
  const sql = postgres(url, {
    max: poolSize,
    onnotice: () => {},
    // postgres.js's connection-rotation timer outlives `end()` (it is cleared only when the socket's close
    // event fires later); isolates are short-lived anyway, so rotation buys nothing here.
    max_lifetime: null,
    // Epoch-millisecond BIGINTs fit in a double; read them as numbers like PGlite does.
    types: {
      bigint: {
        to: INT8_OID,
        from: [INT8_OID],
        serialize: (value: number | bigint) => String(value),
        parse: (value: string) => Number(value),
      },
    },
    connection: { application_name: "deno-sync" },
  });
  const inFlight = new InFlight();
  const db = new Kysely<DB>({
    dialect: countingDialect(new PostgresJSDialect({ postgres: sql }), inFlight),
  });

  const notifier: Notifier = {
    async listen(channel, handler) {
      assertChannelName(channel);
      const { unlisten } = await sql.listen(channel, (payload) => handler(payload));
      return unlisten;
    },
    async notify(channel, payload) {
      assertChannelName(channel);
      assertNotifyPayload(payload);
      await inFlight.track(() => sql.notify(channel, payload));
    },
  };

  return {
    kind: "postgres",
    db,
    notifier,
    rawTransaction<T>(fn: (session: SqlSession) => Promise<T>): Promise<T> {
      return sql.begin((tx) => {
        const session: SqlSession = {
          async exec(script) {
            await inFlight.track(async () => await tx.unsafe(script));
          },
          async query<Row>(text: string, params: unknown[] = []) {
            // deno-lint-ignore no-explicit-any
            const rows = await inFlight.track(async () => await tx.unsafe(text, params as any[]));
            return [...rows] as Row[];
          },
        };
        return fn(session);
      }) as Promise<T>;
    },
    async ping(timeoutMs = 2_000) {
      await withTimeout(
        inFlight.track(async () => await sql`select 1`.execute()),
        timeoutMs,
        "database ping",
      );
    },
    get queriesInFlight() {
      return inFlight.count;
    },
    async close() {
      // Bounded: a connection stuck in LISTEN or a long query must not hold up a shutdown forever.
      await sql.end({ timeout: 5 });
      await db.destroy();
    },
  };
}

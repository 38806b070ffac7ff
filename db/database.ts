/**
 * The narrow database interface the rest of the server uses, whichever engine is behind it:
 * a typed kysely handle, raw transactions for migration scripts, LISTEN/NOTIFY, health and shutdown.
 *
 * @module
 */
import type { DatabaseConnection, Dialect, Driver, Kysely, QueryResult } from "kysely";
import type { DB } from "./schema.ts";

/** Which engine serves the database. */
export type DatabaseKind = "postgres" | "pglite";

/** Raw SQL access inside one transaction on one connection. */
export interface SqlSession {
  /** Runs a script that may hold several statements (no parameters). */
  exec(script: string): Promise<void>;
  /** Runs one parameterised statement and returns its rows. */
  query<Row = Record<string, unknown>>(text: string, params?: unknown[]): Promise<Row[]>;
}

/** Called with each payload published on a channel. */
export type NotificationHandler = (payload: string) => void;

/**
 * Postgres LISTEN/NOTIFY. Delivery is best effort (a listener that is reconnecting misses messages),
 * so callers use it as a hint and keep a durable catch-up path.
 */
export interface Notifier {
  /** Subscribes to `channel`; resolves once the subscription is active, with a function that ends it. */
  listen(channel: string, handler: NotificationHandler): Promise<() => Promise<void>>;
  /** Publishes `payload` (at most {@link MAX_NOTIFY_PAYLOAD_BYTES} bytes) on `channel`. */
  notify(channel: string, payload: string): Promise<void>;
}

/** Postgres rejects NOTIFY payloads of 8000 bytes or more. */
export const MAX_NOTIFY_PAYLOAD_BYTES = 7999;

const CHANNEL_PATTERN = /^[a-z_][a-z0-9_]{0,62}$/;

/** Channel names are SQL identifiers; keep them to a safe, unquoted subset. */
export function assertChannelName(channel: string): void {
  if (!CHANNEL_PATTERN.test(channel)) {
    throw new TypeError(`invalid notification channel name: ${JSON.stringify(channel)}`);
  }
}

/** Checks a payload against the Postgres NOTIFY size limit. */
export function assertNotifyPayload(payload: string): void {
  if (new TextEncoder().encode(payload).byteLength > MAX_NOTIFY_PAYLOAD_BYTES) {
    throw new RangeError(`notification payload exceeds ${MAX_NOTIFY_PAYLOAD_BYTES} bytes`);
  }
}

/** An open database. */
export interface Database {
  readonly kind: DatabaseKind;
  /** Typed query builder; the same query code runs on both engines. */
  readonly db: Kysely<DB>;
  readonly notifier: Notifier;
  /** Runs `fn` inside one transaction with raw SQL access; rolls back if it throws. */
  rawTransaction<T>(fn: (session: SqlSession) => Promise<T>): Promise<T>;
  /** Resolves when the database answers a trivial query within `timeoutMs`; rejects otherwise. */
  ping(timeoutMs?: number): Promise<void>;
  /**
   * Queries sent and not answered yet (kysely queries, raw transaction statements, pings and
   * notifies; not LISTEN): waiting for a pooled connection or running. PGlite runs one at a time,
   * so there it counts its queue too.
   */
  readonly queriesInFlight: number;
  /** Closes every connection. */
  close(): Promise<void>;
}

/** Rejects with a timeout error if `promise` does not settle within `ms`. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Counts database operations in progress (see {@link Database.queriesInFlight}). */
export class InFlight {
  count = 0;

  /** Runs `work`, counted while it is pending. */
  async track<T>(work: () => Promise<T>): Promise<T> {
    this.count++;
    try {
      return await work();
    } finally {
      this.count--;
    }
  }
}

/** `dialect` with every query its connections execute counted in `inFlight`. */
export function countingDialect(dialect: Dialect, inFlight: InFlight): Dialect {
  return {
    createAdapter: () => dialect.createAdapter(),
    createQueryCompiler: () => dialect.createQueryCompiler(),
    createIntrospector: (db) => dialect.createIntrospector(db),
    createDriver: () => countingDriver(dialect.createDriver(), inFlight),
  };
}

function countingDriver(driver: Driver, inFlight: InFlight): Driver {
  const counted = new WeakSet<DatabaseConnection>();
  const wrapper: Driver = {
    init: (options) => driver.init(options),
    acquireConnection: async (options) => {
      const connection = await driver.acquireConnection(options);
      if (!counted.has(connection)) {
        // Patched in place: the driver gets its own connection object back in every other call.
        const execute = connection.executeQuery.bind(connection);
        connection.executeQuery = <R>(...args: Parameters<DatabaseConnection["executeQuery"]>) =>
          inFlight.track(() => execute(...args) as Promise<QueryResult<R>>);
        counted.add(connection);
      }
      return connection;
    },
    beginTransaction: (connection, settings) => driver.beginTransaction(connection, settings),
    commitTransaction: (connection) => driver.commitTransaction(connection),
    rollbackTransaction: (connection) => driver.rollbackTransaction(connection),
    releaseConnection: (connection, options) => driver.releaseConnection(connection, options),
    destroy: (options) => driver.destroy(options),
  };
  if (driver.savepoint) wrapper.savepoint = driver.savepoint.bind(driver);
  if (driver.rollbackToSavepoint) {
    wrapper.rollbackToSavepoint = driver.rollbackToSavepoint.bind(driver);
  }
  if (driver.releaseSavepoint) wrapper.releaseSavepoint = driver.releaseSavepoint.bind(driver);
  return wrapper;
}

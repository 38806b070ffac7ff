/**
 * {@link EventStore} on Postgres (real server or PGlite) through kysely.
 *
 * Appends are a compare-and-set on the store row's head (the row lock serialises writers of one store
 * across every process using the database); the `(storeId, seqNum)` primary key is the backstop that makes
 * a forked log impossible even if that were bypassed. The same statement publishes a NOTIFY (delivered only
 * on commit) so that live pulls in other processes learn about the new head.
 *
 * @module
 */
import { sql } from "kysely";
import type { Database } from "../../db/database.ts";
import type {
  AppendResult,
  EventPage,
  EventStore,
  NewEvent,
  StoreContext,
  StoredEvent,
} from "./event_store.ts";

/** A change notice: store `s` has head `h`, appended by instance `i`. */
export interface HeadNotice {
  s: string;
  h: number;
  i: string;
}

/** Options for {@link PostgresEventStore}. */
export interface PostgresEventStoreOptions {
  /** NOTIFY channel for {@link HeadNotice}s; none are sent when unset. */
  notifyChannel?: string;
  /** Identifies this process in notices so that it can skip its own. */
  instanceId?: string;
  /** Current time in epoch ms (tests). */
  now?: () => number;
}

/** A URL-safe random id like LiveStore's nanoid backend ids. */
export function newBackendId(): string {
  const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-";
  const bytes = crypto.getRandomValues(new Uint8Array(21));
  return [...bytes].map((b) => alphabet[b & 63]).join("");
}

/** The Postgres implementation of {@link EventStore}. */
export class PostgresEventStore implements EventStore {
  readonly #database: Database;
  readonly #options: PostgresEventStoreOptions;
  readonly #now: () => number;

  constructor(database: Database, options: PostgresEventStoreOptions = {}) {
    this.#database = database;
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  /** @inheritdoc */
  async open(storeId: string): Promise<StoreContext> {
    const db = this.#database.db;
    const existing = await db.selectFrom("livestore_store").select(["backendId", "head"])
      .where("storeId", "=", storeId).executeTakeFirst();
    if (existing) return { storeId, backendId: existing.backendId, head: Number(existing.head) };
    const now = this.#now();
    // Two processes may create the same store at once: the first insert wins, both read its backendId.
    await db.insertInto("livestore_store")
      .values({ storeId, backendId: newBackendId(), head: 0, createdAt: now, updatedAt: now })
      .onConflict((oc) => oc.column("storeId").doNothing())
      .execute();
    const row = await db.selectFrom("livestore_store").select(["backendId", "head"])
      .where("storeId", "=", storeId).executeTakeFirstOrThrow();
    return { storeId, backendId: row.backendId, head: Number(row.head) };
  }

  /**
   * One statement, so one round trip: a compare-and-set of the head (`UPDATE … WHERE head = parent`; a
   * concurrent writer blocks on the row and then fails the re-checked condition), the inserts joined to
   * its result (nothing is inserted unless the head moved), and the NOTIFY (sent only on commit).
   */
  async append(storeId: string, events: NewEvent[]): Promise<AppendResult> {
    const first = events[0];
    const last = events.at(-1);
    if (!first || !last) throw new RangeError("append needs at least one event");
    const createdAt = this.#now();
    // Explicit casts everywhere: postgres.js would otherwise JSON-encode the args text a second time.
    const rows = sql.join(
      events.map((event) =>
        sql`(${event.seqNum}::bigint, ${event.parentSeqNum}::bigint, ${event.name}::text, ${event.argsJson}::text, ${event.clientId}::text, ${event.sessionId}::text)`
      ),
    );
    const channel = this.#options.notifyChannel;
    const notice: HeadNotice = { s: storeId, h: last.seqNum, i: this.#options.instanceId ?? "" };
    const notify = channel
      ? sql`SELECT pg_notify(${channel}::text, ${JSON.stringify(notice)}::text) FROM moved`
      : sql`SELECT 1 FROM moved WHERE false`;
    const result = await sql<{ moved: number; inserted: number }>`
      WITH moved AS (
        UPDATE "livestore_store" SET "head" = ${last.seqNum}::bigint, "updatedAt" = ${createdAt}::bigint
        WHERE "storeId" = ${storeId}::text AND "head" = ${first.parentSeqNum}::bigint
        RETURNING "storeId"
      ), inserted AS (
        INSERT INTO "livestore_event"
          ("storeId", "seqNum", "parentSeqNum", "name", "args", "clientId", "sessionId", "createdAt")
        SELECT moved."storeId", v.seq, v.parent, v.name, v.args::json, v.client, v.session,
          ${createdAt}::bigint
        FROM moved, (VALUES ${rows}) AS v (seq, parent, name, args, client, session)
        RETURNING 1
      ), notified AS (${notify})
      SELECT (SELECT count(*) FROM moved)::int AS "moved",
        (SELECT count(*) FROM inserted)::int AS "inserted",
        (SELECT count(*) FROM notified)::int AS "notified"
    `.execute(this.#database.db);
    if (Number(result.rows[0]?.moved ?? 0) === 1) {
      return { ok: true, head: last.seqNum, createdAt };
    }
    // Lost the race (or a stale parent): report the head as it is now, in a fresh snapshot.
    const row = await this.#database.db.selectFrom("livestore_store").select("head")
      .where("storeId", "=", storeId).executeTakeFirst();
    if (!row) throw new Error(`livestore store ${storeId} does not exist`);
    return { ok: false, reason: "server_ahead", head: Number(row.head) };
  }

  /** @inheritdoc */
  async read(storeId: string, after: number, limit: number): Promise<EventPage> {
    const db = this.#database.db;
    const [rows, store] = await Promise.all([
      db.selectFrom("livestore_event")
        .select([
          "seqNum",
          "parentSeqNum",
          "name",
          sql<string | null>`"args"::text`.as("argsJson"),
          "clientId",
          "sessionId",
          "createdAt",
        ])
        .where("storeId", "=", storeId)
        .where("seqNum", ">", after)
        .orderBy("seqNum")
        .limit(limit)
        .execute(),
      db.selectFrom("livestore_store").select("head").where("storeId", "=", storeId)
        .executeTakeFirst(),
    ]);
    const events: StoredEvent[] = rows.map((row) => ({
      seqNum: Number(row.seqNum),
      parentSeqNum: Number(row.parentSeqNum),
      name: row.name,
      argsJson: row.argsJson,
      clientId: row.clientId,
      sessionId: row.sessionId,
      createdAt: Number(row.createdAt),
    }));
    // The two reads are not one snapshot: never report a head behind what we just read.
    const head = Math.max(Number(store?.head ?? 0), events.at(-1)?.seqNum ?? 0);
    return { events, head };
  }

  /** @inheritdoc */
  async heads(storeIds: readonly string[]): Promise<Map<string, number>> {
    if (storeIds.length === 0) return new Map();
    const rows = await this.#database.db.selectFrom("livestore_store").select(["storeId", "head"])
      .where("storeId", "in", [...storeIds]).execute();
    return new Map(rows.map((row) => [row.storeId, Number(row.head)]));
  }
}

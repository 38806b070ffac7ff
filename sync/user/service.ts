/**
 * The user-data sync service of one process: the open connections per user, the per-user mutation queue,
 * and the change feed that brings every row change (from any process, route or plain SQL) to the affected
 * users' sockets.
 *
 * @module
 */
import type { Database } from "../../db/database.ts";
import type { Logger } from "../../log.ts";
import { withSpan } from "../../telemetry.ts";
import { ChangeFeed, type ChangeFeedOptions } from "./change_feed.ts";
import type { ChangeRecord } from "./change_records.ts";
import { type ConnectionHost, UserSyncConnection } from "./connection.ts";
import { ensureUser, loadUserSnapshot, type UserSnapshot } from "./data.ts";
import type { Identity } from "./identity.ts";
import { applyMutation, type ApplyMutationOptions, applyServerWrite } from "./mutations.ts";
import { type ClientMessage, MutationError, type RowUpdate } from "./protocol.ts";
import { KvRateLimiter, type RateLimit, type RateLimitObserver } from "./rate_limit.ts";

/** Tunables and test hooks of the service. */
export interface UserSyncOptions {
  /** Change-feed timing and hooks. */
  feed?: ChangeFeedOptions;
  /** Connections per user (default 60 per minute). */
  connectRate?: RateLimit;
  /** Mutations per user (default 100 per 10 s). */
  mutationRate?: RateLimit;
  /** Retry tunables and the per-attempt hook of the mutation transaction. */
  mutation?: Omit<ApplyMutationOptions, "maxFilesPerUser">;
  /** Test hook: called with each committed mutation number, in commit order. */
  onMutationApplied?: (userId: string, mutationNumber: number) => void;
}

/** What the service is built from. */
export interface UserSyncDeps {
  database: Database;
  kv: Deno.Kv;
  log: Logger;
  maxFilesPerUser: number;
  maxMessageBytes: number;
  /** How long an owner can restore a deleted file (ms). */
  recoveryWindowMs?: number;
  options?: UserSyncOptions;
  /** Told about every refusal by the connect and mutation limits (metrics). */
  onRateLimited?: RateLimitObserver;
  /** Told the error code of every rejected mutation (metrics). */
  onMutationRejected?: (code: string) => void;
}

/** Default connect limit. */
export const DEFAULT_CONNECT_RATE: RateLimit = { limit: 60, windowMs: 60_000 };
/** Default mutation limit. */
export const DEFAULT_MUTATION_RATE: RateLimit = { limit: 100, windowMs: 10_000 };

/** Serves user-sync sockets in this process. */
export class UserSyncService implements ConnectionHost {
  /** The change feed; the room side subscribes with `feed.onFileChanged`. */
  readonly feed: ChangeFeed;
  readonly #deps: UserSyncDeps;
  readonly #log: Logger;
  readonly #connections = new Map<string, Set<UserSyncConnection>>();
  readonly #queues = new Map<string, Promise<void>>();
  readonly #connectLimiter: KvRateLimiter;
  readonly #mutationLimiter: KvRateLimiter;
  readonly #identities = new WeakMap<UserSyncConnection, Identity>();
  #unsubscribe: (() => void) | undefined;
  #stopped = false;

  constructor(deps: UserSyncDeps) {
    this.#deps = deps;
    this.#log = deps.log.child({ component: "user_sync" });
    this.feed = new ChangeFeed(deps.database, deps.log, deps.options?.feed);
    this.#connectLimiter = new KvRateLimiter(
      deps.kv,
      "user_sync_connect",
      deps.options?.connectRate ?? DEFAULT_CONNECT_RATE,
      deps.onRateLimited,
    );
    this.#mutationLimiter = new KvRateLimiter(
      deps.kv,
      "user_sync_mutate",
      deps.options?.mutationRate ?? DEFAULT_MUTATION_RATE,
      deps.onRateLimited,
    );
  }

  /** Counts a connection attempt; `true` when the user is over the connect limit. */
  isConnectLimited(userId: string): Promise<boolean> {
    return this.#connectLimiter.isLimited(userId);
  }

  /** Serves an upgraded socket (not yet open) for an authenticated user. */
  accept(socket: WebSocket, identity: Identity, sessionId: string): void {
    const connection = new UserSyncConnection(
      socket,
      identity.userId,
      sessionId,
      this,
      this.#log.child({ userId: identity.userId, sessionId }),
      this.#deps.maxMessageBytes,
    );
    this.#identities.set(connection, identity);
    connection.attach();
  }

  /** {@link ConnectionHost.load}: registers the connection (holding changes back), then snapshots. */
  async load(connection: UserSyncConnection): Promise<UserSnapshot> {
    this.#unsubscribe ??= this.feed.subscribe((records) => this.#route(records));
    await this.feed.ready();
    let set = this.#connections.get(connection.userId);
    if (!set) this.#connections.set(connection.userId, set = new Set());
    set.add(connection);
    // It may have closed while the feed started; `closed` already ran and would not run again.
    if (connection.isClosed) this.closed(connection);
    const since = this.feed.lowWatermark;
    const identity = this.#identities.get(connection) ?? { userId: connection.userId };
    const { database } = this.#deps;
    let snapshot = await loadUserSnapshot(database, connection.userId, since);
    if (!snapshot) {
      await ensureUser(database.db, identity);
      snapshot = await loadUserSnapshot(database, connection.userId, since);
    }
    if (!snapshot) throw new Error("user row missing after insert");
    return snapshot;
  }

  /**
   * Closes the user's sockets on this isolate with 1012, so their clients reconnect and load their
   * data afresh (admin "force reload"). Returns how many were closed.
   */
  reloadUser(userId: string): number {
    const connections = [...(this.#connections.get(userId) ?? [])];
    for (const connection of connections) connection.close(1012, "reload");
    return connections.length;
  }

  /** {@link ConnectionHost.closed} */
  closed(connection: UserSyncConnection): void {
    const set = this.#connections.get(connection.userId);
    set?.delete(connection);
    if (set?.size === 0) this.#connections.delete(connection.userId);
  }

  /** {@link ConnectionHost.mutate}: one at a time per user, in arrival order. */
  mutate(
    connection: UserSyncConnection,
    message: Extract<ClientMessage, { type: "mutate" }>,
  ): void {
    const userId = connection.userId;
    const previous = this.#queues.get(userId) ?? Promise.resolve();
    const next = previous.then(() => this.#process(connection, message));
    this.#queues.set(userId, next);
    void next.finally(() => {
      if (this.#queues.get(userId) === next) this.#queues.delete(userId);
    });
  }

  async #process(
    connection: UserSyncConnection,
    { mutationId, updates }: Extract<ClientMessage, { type: "mutate" }>,
  ): Promise<void> {
    const userId = connection.userId;
    try {
      if (this.#stopped) throw new MutationError("unknown_error", "server stopping");
      if (await this.#mutationLimiter.isLimited(userId)) {
        throw new MutationError("rate_limit_exceeded", "too many mutations");
      }
      const result = await withSpan(
        "user_sync.mutation",
        { "enduser.id": userId, "user_sync.updates": updates.length },
        () => applyMutation(this.#deps.database, userId, updates, this.#mutationOptions()),
      );
      this.#deps.options?.onMutationApplied?.(userId, result.mutationNumber);
      // Updates to every local socket of every affected user, then the commit to the sender.
      this.feed.deliverOwn(result.changes);
      connection.send({ type: "commit", mutationIds: [mutationId] });
    } catch (error) {
      const code = error instanceof MutationError ? error.code : "unknown_error";
      if (code === "unknown_error") this.#log.error("mutation failed", { userId, error });
      else this.#log.debug("mutation rejected", { userId, code, error });
      this.#deps.onMutationRejected?.(code);
      connection.send({ type: "reject", mutationId, errorCode: code });
    }
  }

  /**
   * The limits and hooks every transport applies the row rules with (Zero's mutators use them too,
   * so that publishing, copies and the file limit behave the same).
   */
  ruleOptions(): ApplyMutationOptions {
    return this.#mutationOptions();
  }

  /**
   * Counts one write for `userId` against the mutation limit; `true` when it is over (another
   * transport refuses it with `rate_limit_exceeded`).
   */
  isMutationLimited(userId: string): Promise<boolean> {
    return this.#mutationLimiter.isLimited(userId);
  }

  #mutationOptions(): ApplyMutationOptions {
    return {
      ...this.#deps.options?.mutation,
      maxFilesPerUser: this.#deps.maxFilesPerUser,
      ...(this.#deps.recoveryWindowMs !== undefined
        ? { recoveryWindowMs: this.#deps.recoveryWindowMs }
        : {}),
    };
  }

  /**
   * Row updates a server route makes for `userId` (creating or restoring a file): the rules, hooks
   * and rate limit of a mutation, without a mutation number. The changes reach the user's sockets
   * here at once (and other isolates through the feed). Throws {@link MutationError}.
   */
  async writeRows(userId: string, updates: RowUpdate[]): Promise<void> {
    if (this.#stopped) throw new MutationError("unknown_error", "server stopping");
    if (await this.#mutationLimiter.isLimited(userId)) {
      throw new MutationError("rate_limit_exceeded", "too many changes");
    }
    const changes = await withSpan(
      "user_sync.server_write",
      { "enduser.id": userId, "user_sync.updates": updates.length },
      () => applyServerWrite(this.#deps.database, userId, updates, this.#mutationOptions()),
    );
    this.feed.deliverOwn(changes);
  }

  #route(records: ChangeRecord[]): void {
    const perConnection = new Map<UserSyncConnection, ChangeRecord[]>();
    for (const record of records) {
      for (const userId of record.userIds) {
        for (const connection of this.#connections.get(userId) ?? []) {
          let list = perConnection.get(connection);
          if (!list) perConnection.set(connection, list = []);
          list.push(record);
        }
      }
    }
    for (const [connection, list] of perConnection) connection.deliver(list);
  }

  /** Waits for queued mutations, then stops the feed. Sockets are closed by the lifecycle. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.allSettled([...this.#queues.values()]);
    this.#unsubscribe?.();
    await this.feed.stop();
  }
}

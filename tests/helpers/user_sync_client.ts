/**
 * Test utilities for the user-data channel: a WebSocket client that records what the server sends, dev
 * tokens, a test JWKS issuer with rotatable keys, and a server preset with auth enabled.
 *
 * @module
 */
// app.ts loads tldraw, whose import starts a timer: let it fire before any test starts.
import "./tldraw_settle.ts";
import { exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";
import { type Config, testConfig } from "../../config.ts";
import type { Database } from "../../db/database.ts";
import type { Logger } from "../../log.ts";
import type { FileRoomRouteOptions } from "../../routes/file_rooms.ts";
import type { UserDataOptions } from "../../routes/user_sync.ts";
import type { ServerMessage } from "../../sync/user/protocol.ts";
import { startTestServer, type TestServer, type TestServerOptions } from "./server.ts";

/** A message the server sent. */
export type Received = ServerMessage & Record<string, unknown>;

/** A user-sync WebSocket that records every message and the close. */
export class UserSyncClient implements AsyncDisposable {
  readonly socket: WebSocket;
  readonly messages: Received[] = [];
  readonly opened: Promise<void>;
  readonly closed: Promise<{ code: number; reason: string }>;
  #waiters = new Set<() => void>();

  constructor(url: string) {
    this.socket = new WebSocket(url);
    this.opened = new Promise((resolve, reject) => {
      this.socket.addEventListener("open", () => resolve(), { once: true });
      this.socket.addEventListener("error", () => reject(new Error("socket error")), {
        once: true,
      });
    });
    this.opened.catch(() => {});
    this.closed = new Promise((resolve) => {
      this.socket.addEventListener("close", (event) => {
        resolve({ code: event.code, reason: event.reason });
        this.#notify();
      });
    });
    this.socket.addEventListener("message", (event) => {
      this.messages.push(JSON.parse(event.data as string));
      this.#notify();
    });
  }

  #notify() {
    for (const waiter of this.#waiters) waiter();
  }

  /** Sends a JSON message (or a raw string as-is). */
  send(message: unknown): void {
    this.socket.send(typeof message === "string" ? message : JSON.stringify(message));
  }

  /** Resolves with the first recorded message (from index `from`) matching `predicate`. */
  next(
    predicate: (message: Received) => boolean,
    { from = 0, timeoutMs = 3_000 }: { from?: number; timeoutMs?: number } = {},
  ): Promise<Received> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.messages.slice(from).find(predicate);
        if (found) {
          done();
          resolve(found);
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new Error(
            `no matching message within ${timeoutMs} ms; got ${JSON.stringify(this.messages)}`,
          ),
        );
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
      check();
    });
  }

  /** The `initial_data` message. */
  initialData(): Promise<Received & { type: "initial_data" }> {
    return this.next((m) => m.type === "initial_data") as Promise<
      Received & { type: "initial_data" }
    >;
  }

  /** The `commit` or `reject` for `mutationId`. */
  outcome(mutationId: string, timeoutMs = 5_000): Promise<Received> {
    return this.next(
      (m) =>
        (m.type === "commit" && (m.mutationIds as string[]).includes(mutationId)) ||
        (m.type === "reject" && m.mutationId === mutationId),
      { timeoutMs },
    );
  }

  /** Sends a mutation and waits for its outcome. */
  async mutate(
    mutationId: string,
    updates: { table: string; event: string; row: Record<string, unknown> }[],
  ): Promise<Received> {
    this.send({ type: "mutate", mutationId, updates });
    return await this.outcome(mutationId);
  }

  /** Every row change received in `update` messages so far. */
  updates(): { table: string; event: string; row: Record<string, unknown> }[] {
    return this.messages.flatMap((m) =>
      m.type === "update"
        ? (m.updates as { table: string; event: string; row: Record<string, unknown> }[])
        : []
    );
  }

  /** Waits for a row change matching `predicate`. */
  nextUpdate(
    predicate: (change: { table: string; event: string; row: Record<string, unknown> }) => boolean,
    timeoutMs = 3_000,
  ): Promise<Received> {
    return this.next(
      (m) =>
        m.type === "update" &&
        (m.updates as { table: string; event: string; row: Record<string, unknown> }[]).some(
          predicate,
        ),
      { timeoutMs },
    );
  }

  /** Closes (if open) and waits until closed. */
  async close(): Promise<{ code: number; reason: string }> {
    if (
      this.socket.readyState === WebSocket.OPEN || this.socket.readyState === WebSocket.CONNECTING
    ) {
      try {
        this.socket.close();
      } catch {
        // closing already
      }
    }
    return await this.closed;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** A test server with the dev identity provider on (and a remote JWKS when given), plus helpers. */
export interface AuthServer extends TestServer {
  /** A dev token for `userId`. */
  token(userId: string, claims?: { name?: string; email?: string }): Promise<string>;
  /** Opens `/app/:userId/connect` with the token in the query. */
  connect(
    userId: string,
    options?: {
      token?: string | null;
      protocolVersion?: number | null;
      sessionId?: string;
      pathUserId?: string;
    },
  ): Promise<UserSyncClient>;
  /**
   * Connects each of `userIds` past its initial data: `await using users = await
   * server.users("alice", "bob"); const { alice, bob } = users;` closes them all at the end.
   */
  users<const U extends string>(
    ...userIds: U[]
  ): Promise<Record<U, UserSyncClient> & AsyncDisposable>;
}

/** Options of {@link startAuthServer}. */
export interface AuthServerOptions {
  auth?: Partial<Config["auth"]>;
  limits?: Partial<Config["limits"]>;
  userData?: UserDataOptions;
  fileRooms?: FileRoomRouteOptions;
  /** Test seams of history, assets, hard deletes and unfurling. */
  content?: TestServerOptions["content"];
  /** Configuration overrides (e.g. `content` limits). */
  config?: Partial<Config>;
  /** Share a KV (e.g. two servers as two isolates). */
  kv?: Deno.Kv;
  /** Share a database (it is then not closed by the server). */
  database?: Database;
  log?: Logger;
}

/** Starts the app with auth enabled. */
export async function startAuthServer(options: AuthServerOptions = {}): Promise<AuthServer> {
  const base = testConfig();
  const server = await startTestServer({
    config: {
      ...options.config,
      auth: { ...base.auth, devIdentityProvider: true, ...options.auth },
      limits: { ...base.limits, ...options.limits },
    },
    ...(options.content ? { content: options.content } : {}),
    ...(options.kv ? { kv: options.kv } : {}),
    ...(options.database ? { database: options.database } : {}),
    ...(options.log ? { log: options.log } : {}),
    ...(options.fileRooms ? { fileRooms: options.fileRooms } : {}),
    userData: {
      ...options.userData,
      service: {
        // Generous limits unless a test sets its own.
        connectRate: { limit: 1_000, windowMs: 60_000 },
        mutationRate: { limit: 10_000, windowMs: 10_000 },
        ...options.userData?.service,
      },
    },
  });
  const token = async (userId: string, claims: { name?: string; email?: string } = {}) => {
    const response = await fetch(`${server.url}/auth/dev/token`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ userId, ...claims }),
    });
    if (!response.ok) throw new Error(`dev token: ${response.status} ${await response.text()}`);
    return ((await response.json()) as { token: string }).token;
  };
  const connect: AuthServer["connect"] = async (userId, opts = {}) => {
    const params = new URLSearchParams({ sessionId: opts.sessionId ?? crypto.randomUUID() });
    if (opts.protocolVersion !== null) {
      params.set("protocolVersion", String(opts.protocolVersion ?? 2));
    }
    if (opts.token !== null) params.set("token", opts.token ?? await token(userId));
    const client = new UserSyncClient(
      `${server.wsUrl}/app/${encodeURIComponent(opts.pathUserId ?? userId)}/connect?${params}`,
    );
    await client.opened;
    return client;
  };
  const users: AuthServer["users"] = async <const U extends string>(...userIds: U[]) => {
    const clients = {} as Record<U, UserSyncClient>;
    for (const userId of userIds) {
      clients[userId] = await connect(userId);
      await clients[userId].initialData();
    }
    return Object.assign(clients, {
      [Symbol.asyncDispose]: async () => {
        for (const client of Object.values<UserSyncClient>(clients)) await client.close();
      },
    });
  };
  return Object.assign(server, { token, connect, users });
}

/** A JWKS server with its own RS256 keys, standing in for Clerk. */
export class TestIssuer implements AsyncDisposable {
  readonly issuer = "https://issuer.test";
  readonly audience = "deno-sync-test";
  readonly #server: Deno.HttpServer;
  readonly url: string;
  #keys: { kid: string; privateKey: CryptoKey; publicJwk: JWK }[] = [];
  fetches = 0;

  private constructor(server: Deno.HttpServer, port: number) {
    this.#server = server;
    this.url = `http://127.0.0.1:${port}/.well-known/jwks.json`;
  }

  /** Starts the JWKS server with one key. */
  static async start(): Promise<TestIssuer> {
    const holder: { issuer?: TestIssuer } = {};
    let resolvePort: (port: number) => void;
    const listening = new Promise<number>((resolve) => (resolvePort = resolve));
    const server = Deno.serve(
      { port: 0, hostname: "127.0.0.1", onListen: ({ port }) => resolvePort(port) },
      () => {
        const issuer = holder.issuer!;
        issuer.fetches++;
        return Response.json({ keys: issuer.#keys.map((key) => key.publicJwk) });
      },
    );
    const issuer = holder.issuer = new TestIssuer(server, await listening);
    await issuer.rotate();
    return issuer;
  }

  /** Replaces the signing key with a new one (the old one leaves the JWKS). */
  async rotate(): Promise<void> {
    const { privateKey, publicKey } = await generateKeyPair("RS256", { extractable: true });
    const kid = `k-${crypto.randomUUID()}`;
    this.#keys = [{
      kid,
      privateKey,
      publicJwk: { ...(await exportJWK(publicKey)), kid, alg: "RS256" },
    }];
  }

  /** Signs a token for `sub` with the current key. */
  async sign(
    sub: string,
    options: {
      expiresInSeconds?: number;
      audience?: string;
      issuer?: string;
      key?: CryptoKey;
      kid?: string;
    } = {},
  ): Promise<string> {
    const current = this.#keys[0]!;
    const now = Math.floor(Date.now() / 1000);
    return await new SignJWT({ name: `Name of ${sub}`, email: `${sub}@example.com` })
      .setProtectedHeader({ alg: "RS256", kid: options.kid ?? current.kid })
      .setSubject(sub)
      .setIssuer(options.issuer ?? this.issuer)
      .setAudience(options.audience ?? this.audience)
      .setIssuedAt(now - 120)
      .setExpirationTime(now + (options.expiresInSeconds ?? 300))
      .sign(options.key ?? current.privateKey);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#server.shutdown();
  }
}

export { eventually } from "./wait.ts";

/** A complete `file` row for a mutation. */
export function fileRow(id: string, ownerId: string, extra: Record<string, unknown> = {}) {
  const now = Date.now();
  return {
    id,
    name: `File ${id}`,
    ownerId,
    publishedSlug: `slug-${id}`,
    createdAt: now,
    updatedAt: now,
    ...extra,
  };
}

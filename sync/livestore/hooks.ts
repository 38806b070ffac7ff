/**
 * Configuration points of LiveStore sync, mirroring `@livestore/sync-cf`'s server options:
 * `validatePayload` runs once at connect (a throw rejects the connection with HTTP 400), `onPull` and
 * `onPush` run for every request (a throw answers that request with `UnknownError`).
 *
 * @module
 */
import type { PullPayload, PushPayload } from "./wire.ts";

/** What a hook knows about the connection. */
export interface HookContext {
  storeId: string;
  /** The client's sync payload (`syncPayload` in the LiveStore client), already decoded. */
  payload: unknown;
  /** Headers of the connecting request (the WebSocket upgrade or the HTTP POST). */
  headers: Headers;
}

/** The hooks; each is optional. */
export interface LivestoreHooks {
  /** At connect. Throw to reject with HTTP 400; the message is not shown to the client. */
  validatePayload?: (
    payload: unknown,
    context: { storeId: string; headers: Headers },
  ) => void | Promise<void>;
  /** Before each pull. Throw to fail it with `UnknownError`. */
  onPull?: (request: PullPayload, context: HookContext) => void | Promise<void>;
  /** Before each non-empty push. Throw to fail it with `UnknownError` (the client retries with backoff). */
  onPush?: (request: PushPayload, context: HookContext) => void | Promise<void>;
}

/** Thrown by the default hooks; its message is safe to log. */
export class LivestoreAuthError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "LivestoreAuthError";
  }
}

/** Compares in time independent of where the strings differ, so a token cannot be guessed byte by byte. */
function constantTimeEqual(a: string, b: string): boolean {
  const left = new TextEncoder().encode(a);
  const right = new TextEncoder().encode(b);
  let diff = left.length ^ right.length;
  for (let i = 0; i < Math.max(left.length, right.length); i++) {
    diff |= (left[i] ?? 0) ^ (right[i] ?? 0);
  }
  return diff === 0;
}

/** Whether `payload` is `{authToken: token}` (other fields allowed). */
export function payloadHasToken(payload: unknown, token: string): boolean {
  if (typeof payload !== "object" || payload === null) return false;
  const given = (payload as { authToken?: unknown }).authToken;
  return typeof given === "string" && constantTimeEqual(given, token);
}

/**
 * The default hooks: with a token configured, every connection must send `syncPayload: {authToken}`
 * equal to it; without one, everything is allowed (local development).
 */
export function tokenAuthHooks(authToken: string | undefined): LivestoreHooks {
  if (authToken === undefined) return {};
  return {
    validatePayload(payload) {
      if (!payloadHasToken(payload, authToken)) {
        throw new LivestoreAuthError("missing or wrong authToken in the sync payload");
      }
    },
  };
}

/** Proves whose a JWT is (e.g. the app's token verifier); throws when the token is not valid. */
export type VerifyToken = (token: string) => Promise<{ userId: string }>;

/** What a request wants to do with a store. */
export type StoreAccessMode = "read" | "write";

/** Whether `userId` may read or write `storeId`. */
export type StoreAccessRule = (
  userId: string,
  storeId: string,
  mode: StoreAccessMode,
) => boolean | Promise<boolean>;

/** Options for {@link jwtAccessHooks}. */
export interface JwtAccessOptions {
  verify: VerifyToken;
  canAccess: StoreAccessRule;
  /**
   * Stores that belong to users (e.g. `user:` and `file:`): a connection to one always needs a
   * JWT and the store rule, whatever {@link withoutJwt} allows.
   */
  requiresJwt?: (storeId: string) => boolean;
  /**
   * Hooks for connections that bring no JWT, to other stores (e.g. {@link tokenAuthHooks}, or `{}`
   * for anyone); without them such connections are refused.
   */
  withoutJwt?: LivestoreHooks;
}

function jwtOf(payload: unknown, headers: Headers): string | undefined {
  if (typeof payload === "object" && payload !== null) {
    const jwt = (payload as { jwt?: unknown }).jwt;
    if (typeof jwt === "string" && jwt !== "") return jwt;
  }
  // The HTTP transport can send headers; the WebSocket one cannot.
  const authorization = headers.get("authorization");
  return authorization?.startsWith("Bearer ") ? authorization.slice(7) : undefined;
}

/**
 * Per-store access for our users: a client sends `syncPayload: {jwt}` (or, over HTTP, a bearer header).
 * The token is verified once at connect; the store rule is checked at connect and again on every pull and
 * push, so that revoked access (a file unshared or deleted) stops syncing without a reconnect.
 */
export function jwtAccessHooks(options: JwtAccessOptions): LivestoreHooks {
  // The decoded payload object of a connection is the same object in every hook call of it.
  const users = new WeakMap<object, string>();
  const userOf = (context: HookContext): string | undefined =>
    typeof context.payload === "object" && context.payload !== null
      ? users.get(context.payload)
      : undefined;
  const check = async (context: HookContext, mode: StoreAccessMode) => {
    const userId = userOf(context);
    if (userId === undefined) return false;
    return await options.canAccess(userId, context.storeId, mode);
  };
  const fallback = options.withoutJwt;
  return {
    async validatePayload(payload, context) {
      const jwt = jwtOf(payload, context.headers);
      if (jwt === undefined) {
        if (!fallback || options.requiresJwt?.(context.storeId)) {
          throw new LivestoreAuthError("a jwt is required");
        }
        await fallback.validatePayload?.(payload, context);
        return;
      }
      const { userId } = await options.verify(jwt);
      if (!(await options.canAccess(userId, context.storeId, "read"))) {
        throw new LivestoreAuthError("no access to this store");
      }
      // A JWT in a header with a non-object payload leaves nothing to key on; such connections then
      // fail the per-request checks below, which is the safe side.
      if (typeof payload === "object" && payload !== null) users.set(payload, userId);
    },
    async onPull(request, context) {
      if (userOf(context) === undefined && fallback && !options.requiresJwt?.(context.storeId)) {
        return await fallback.onPull?.(request, context);
      }
      if (!(await check(context, "read"))) throw new LivestoreAuthError("no read access");
    },
    async onPush(request, context) {
      if (userOf(context) === undefined && fallback && !options.requiresJwt?.(context.storeId)) {
        return await fallback.onPush?.(request, context);
      }
      if (!(await check(context, "write"))) throw new LivestoreAuthError("no write access");
    },
  };
}

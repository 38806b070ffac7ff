/**
 * Verifying bearer JWTs (Clerk-style RS256 session tokens, `sub` = user id) with `jose` against a JWKS:
 * the configured remote JWKS URL (keys cached, re-fetched when an unknown `kid` shows up, so rotated keys
 * work), and, when the dev identity provider is on, its local key set. Both go through the same code.
 *
 * @module
 */
import {
  createRemoteJWKSet,
  decodeProtectedHeader,
  type JWTPayload,
  jwtVerify,
  type JWTVerifyGetKey,
} from "jose";
import type { Identity } from "../../sync/user/identity.ts";

/** Why a token was refused (never includes the token). */
export const AUTH_FAILURES = ["missing", "invalid", "expired", "no_key_source"] as const;
/** One of {@link AUTH_FAILURES}. */
export type AuthFailure = (typeof AUTH_FAILURES)[number];

/** A refused token. */
export class AuthError extends Error {
  readonly reason: AuthFailure;
  constructor(reason: AuthFailure, message: string) {
    super(message);
    this.name = "AuthError";
    this.reason = reason;
  }
}

/** One trusted issuer: its key set and the claims its tokens must carry. */
export interface KeySource {
  keys: JWTVerifyGetKey;
  issuer?: string;
  audience?: string;
  /** When set, only tokens whose header `kid` is one of these go to this source. */
  kids?: () => Promise<readonly string[]>;
}

/** Remote JWKS caching (jose's `createRemoteJWKSet` options). */
export interface RemoteJwksOptions {
  /** Minimum time between re-fetches for an unknown `kid` (default 30 s). */
  cooldownMs?: number;
  /** How long fetched keys are trusted before a re-fetch (default 10 min). */
  cacheMaxAgeMs?: number;
  /** Fetch timeout (default 5 s). */
  timeoutMs?: number;
}

/** A key source for a remote JWKS URL. */
export function remoteKeySource(
  url: string,
  claims: { issuer?: string; audience?: string },
  options: RemoteJwksOptions = {},
): KeySource {
  return {
    keys: createRemoteJWKSet(new URL(url), {
      cooldownDuration: options.cooldownMs ?? 30_000,
      cacheMaxAge: options.cacheMaxAgeMs ?? 600_000,
      timeoutDuration: options.timeoutMs ?? 5_000,
    }),
    ...claims,
  };
}

const ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "EdDSA"];

/** Verifies tokens against an ordered list of key sources. */
export class TokenVerifier {
  readonly #sources: KeySource[];

  constructor(sources: KeySource[]) {
    this.#sources = sources;
  }

  /** The identity a valid token proves; throws {@link AuthError} otherwise. */
  async verify(token: string | undefined): Promise<Identity> {
    if (!token) throw new AuthError("missing", "no token");
    let kid: string | undefined;
    try {
      kid = decodeProtectedHeader(token).kid;
    } catch {
      throw new AuthError("invalid", "malformed token");
    }
    const source = await this.#sourceFor(kid);
    if (!source) throw new AuthError("no_key_source", "no key source accepts this token");
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, source.keys, {
        algorithms: ALGORITHMS,
        ...(source.issuer ? { issuer: source.issuer } : {}),
        ...(source.audience ? { audience: source.audience } : {}),
        requiredClaims: ["sub", "exp"],
        clockTolerance: 5,
      }));
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code === "ERR_JWT_EXPIRED") throw new AuthError("expired", "token expired");
      throw new AuthError("invalid", `token refused (${code ?? "verification failed"})`);
    }
    if (typeof payload.sub !== "string" || payload.sub === "") {
      throw new AuthError("invalid", "token has no subject");
    }
    return {
      userId: payload.sub,
      ...(typeof payload.name === "string" ? { name: payload.name } : {}),
      ...(typeof payload.email === "string" ? { email: payload.email } : {}),
    };
  }

  async #sourceFor(kid: string | undefined): Promise<KeySource | undefined> {
    let fallback: KeySource | undefined;
    for (const source of this.#sources) {
      if (!source.kids) {
        fallback ??= source;
        continue;
      }
      if (kid !== undefined && (await source.kids()).includes(kid)) return source;
    }
    return fallback;
  }
}

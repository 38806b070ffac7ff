/**
 * Authentication for routes: builds the token verifier from the configuration (remote JWKS and/or the dev
 * identity provider) and turns a request into an identity. Tokens are never logged.
 *
 * @module
 */
import type { Context } from "hono";
import type { Config } from "../../config.ts";
import type { Logger } from "../../log.ts";
import type { Identity } from "../../sync/user/identity.ts";
import { HttpError } from "../errors.ts";
import { DevIdentityProvider } from "./dev_identity.ts";
import { extractToken } from "./token.ts";
import {
  AuthError,
  type AuthFailure,
  type KeySource,
  type RemoteJwksOptions,
  remoteKeySource,
  TokenVerifier,
} from "./verifier.ts";

/** Options not in the configuration (test tunables). */
export interface AuthOptions {
  /** Remote JWKS caching. */
  remoteJwks?: RemoteJwksOptions;
  /** Lifetime of dev tokens (default 24 h). */
  devTokenTtlSeconds?: number;
}

/** The outcome of checking a request. */
export type AuthResult =
  | { ok: true; identity: Identity }
  | { ok: false; reason: AuthFailure };

/** Authenticates requests. */
export class Authenticator {
  readonly verifier: TokenVerifier;
  /** Present when the dev identity provider is enabled. */
  readonly devIdentity: DevIdentityProvider | undefined;
  readonly #log: Logger;

  constructor(verifier: TokenVerifier, devIdentity: DevIdentityProvider | undefined, log: Logger) {
    this.verifier = verifier;
    this.devIdentity = devIdentity;
    this.#log = log;
  }

  /** Checks the request's token (header, then query, then cookie). */
  async check(c: Context): Promise<AuthResult> {
    try {
      return { ok: true, identity: await this.verifier.verify(extractToken(c)) };
    } catch (error) {
      if (error instanceof AuthError) {
        if (error.reason !== "missing") {
          this.#log.info("token refused", { reason: error.reason, detail: error.message });
        }
        return { ok: false, reason: error.reason };
      }
      throw error;
    }
  }

  /** The caller's identity; 401 JSON when there is no valid token. */
  async required(c: Context): Promise<Identity> {
    const result = await this.check(c);
    if (result.ok) return result.identity;
    throw new HttpError(
      "unauthorized",
      result.reason === "missing" ? "Authentication required" : "Invalid or expired token",
    );
  }

  /** The caller's identity, `undefined` when anonymous; 401 JSON when a token was sent but is not valid. */
  async optional(c: Context): Promise<Identity | undefined> {
    const result = await this.check(c);
    if (result.ok) return result.identity;
    if (result.reason === "missing") return undefined;
    throw new HttpError("unauthorized", "Invalid or expired token");
  }
}

/** Builds the authenticator from the configuration. */
export function createAuthenticator(
  config: Config,
  kv: Deno.Kv,
  log: Logger,
  options: AuthOptions = {},
): Authenticator {
  const sources: KeySource[] = [];
  const devIdentity = config.auth.devIdentityProvider
    ? new DevIdentityProvider(kv, {
      ...(config.auth.audience ? { audience: config.auth.audience } : {}),
      ...(options.devTokenTtlSeconds ? { ttlSeconds: options.devTokenTtlSeconds } : {}),
    })
    : undefined;
  if (devIdentity) sources.push(devIdentity.keySource());
  if (config.auth.jwksUrl) {
    sources.push(remoteKeySource(config.auth.jwksUrl, {
      ...(config.auth.issuer ? { issuer: config.auth.issuer } : {}),
      ...(config.auth.audience ? { audience: config.auth.audience } : {}),
    }, options.remoteJwks));
  }
  return new Authenticator(
    new TokenVerifier(sources),
    devIdentity,
    log.child({ component: "auth" }),
  );
}

/**
 * The dev identity provider: signs tokens for any user with a local RS256 key so that local development
 * exercises the real verifier. The key pair lives in KV so tokens survive restarts and every isolate agrees.
 * Enabled only when `config.auth.devIdentityProvider` is set.
 *
 * @module
 */
import {
  createLocalJWKSet,
  exportJWK,
  generateKeyPair,
  importJWK,
  type JWK,
  type JWTVerifyGetKey,
  SignJWT,
} from "jose";
import type { KeySource } from "./verifier.ts";

/** The `iss` of dev tokens. */
export const DEV_ISSUER = "urn:deno-sync:dev-identity";
const KV_KEY = ["auth", "dev_identity_key"] as const;
const ALG = "RS256";

interface StoredKey {
  kid: string;
  privateJwk: JWK;
  publicJwk: JWK;
}

/** The claims a dev token is issued for. */
export interface DevTokenRequest {
  userId: string;
  name?: string;
  email?: string;
}

/** Issues dev tokens and serves their public key. */
export class DevIdentityProvider {
  readonly #kv: Deno.Kv;
  readonly #audience: string | undefined;
  readonly #ttlSeconds: number;
  #key: Promise<StoredKey> | undefined;
  #keySet: JWTVerifyGetKey | undefined;

  constructor(kv: Deno.Kv, options: { audience?: string; ttlSeconds?: number } = {}) {
    this.#kv = kv;
    this.#audience = options.audience;
    this.#ttlSeconds = options.ttlSeconds ?? 24 * 60 * 60;
  }

  /** Signs a token for `request.userId`. */
  async issue(request: DevTokenRequest): Promise<{ token: string; expiresAt: number }> {
    const key = await this.#storedKey();
    const privateKey = await importJWK(key.privateJwk, ALG);
    const now = Math.floor(Date.now() / 1000);
    const jwt = new SignJWT({
      ...(request.name !== undefined ? { name: request.name } : {}),
      ...(request.email !== undefined ? { email: request.email } : {}),
    })
      .setProtectedHeader({ alg: ALG, kid: key.kid, typ: "JWT" })
      .setSubject(request.userId)
      .setIssuer(DEV_ISSUER)
      .setIssuedAt(now)
      .setExpirationTime(now + this.#ttlSeconds);
    if (this.#audience) jwt.setAudience(this.#audience);
    return { token: await jwt.sign(privateKey), expiresAt: (now + this.#ttlSeconds) * 1000 };
  }

  /** The public key set (`/.well-known/jwks.json`). */
  async jwks(): Promise<{ keys: JWK[] }> {
    const key = await this.#storedKey();
    return { keys: [key.publicJwk] };
  }

  /** The verifier's key source for dev tokens (a local JWKS built from {@link jwks}). */
  keySource(): KeySource {
    return {
      keys: async (header, token) => {
        this.#keySet ??= createLocalJWKSet(await this.jwks());
        return await this.#keySet(header, token);
      },
      issuer: DEV_ISSUER,
      ...(this.#audience ? { audience: this.#audience } : {}),
      kids: async () => [(await this.#storedKey()).kid],
    };
  }

  #storedKey(): Promise<StoredKey> {
    this.#key ??= this.#loadOrCreate().catch((error) => {
      this.#key = undefined;
      throw error;
    });
    return this.#key;
  }

  async #loadOrCreate(): Promise<StoredKey> {
    const existing = await this.#kv.get<StoredKey>(KV_KEY);
    if (existing.value) return existing.value;
    const { privateKey, publicKey } = await generateKeyPair(ALG, { extractable: true });
    const kid = `dev-${crypto.randomUUID()}`;
    const stored: StoredKey = {
      kid,
      privateJwk: { ...(await exportJWK(privateKey)), kid, alg: ALG },
      publicJwk: { ...(await exportJWK(publicKey)), kid, alg: ALG, use: "sig" },
    };
    // Another isolate may create its key at the same moment: the first write wins, everyone uses it.
    const result = await this.#kv.atomic().check(existing).set(KV_KEY, stored).commit();
    if (result.ok) return stored;
    const winner = await this.#kv.get<StoredKey>(KV_KEY);
    if (!winner.value) throw new Error("dev identity key vanished");
    return winner.value;
  }
}

/**
 * `GET /app/config`: what the web app needs to know about this server before it shows anything:
 * how people sign in (the development identity provider, or a real one's sign-in page), and where
 * zero-cache is when files sync through Zero. Public, and holds nothing secret.
 *
 * @module
 */
import { Hono } from "hono";
import type { Config } from "../config.ts";

/** The body of `GET /app/config`. */
export interface ClientConfig {
  auth: {
    /** `POST /auth/dev/token` works ("sign in as" any user id). */
    devIdentityProvider: boolean;
    /** The real identity provider's sign-in page, when configured (`AUTH_SIGN_IN_URL`). */
    signInUrl: string | null;
    /** Tokens of a real identity provider are verified (`AUTH_JWKS_URL`). */
    verifiesTokens: boolean;
  };
  /** Zero: where clients reach zero-cache (`null`: the web app uses the user-data channel). */
  zero: { cacheUrl: string | null };
}

/** The client configuration of `config`. */
export function clientConfig(config: Config): ClientConfig {
  return {
    auth: {
      devIdentityProvider: config.auth.devIdentityProvider,
      signInUrl: config.auth.signInUrl ?? null,
      verifiesTokens: config.auth.jwksUrl !== undefined,
    },
    zero: { cacheUrl: config.zeroCacheUrl ?? null },
  };
}

/** The route. */
export function clientConfigRoutes(config: Config): Hono {
  const app = new Hono();
  const body = clientConfig(config);
  app.get("/app/config", (c) => {
    c.header("Cache-Control", "no-cache");
    return c.json(body);
  });
  return app;
}

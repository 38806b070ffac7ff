/**
 * Where a request's token comes from. Browsers cannot set headers on a WebSocket upgrade, so besides the
 * `Authorization` header a `token`/`accessToken` query parameter and Clerk's `__session` cookie are accepted,
 * in that order: the first one present is the token (a bad header is not rescued by a cookie).
 *
 * @module
 */
import { getCookie } from "hono/cookie";
import type { Context } from "hono";

/** The session cookie Clerk sets. */
export const SESSION_COOKIE = "__session";

/** The query parameters a token may come in. */
export const TOKEN_QUERY_PARAMS = ["token", "accessToken"] as const;

/** The request's token, or `undefined` when it carries none. */
export function extractToken(c: Context): string | undefined {
  const header = c.req.header("Authorization");
  if (header !== undefined && header !== "") {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    // A malformed header still counts as "a token was sent": it is verified (and fails) as-is.
    return match ? match[1] : header;
  }
  for (const name of TOKEN_QUERY_PARAMS) {
    const value = c.req.query(name);
    if (value) return value;
  }
  const cookie = getCookie(c, SESSION_COOKIE);
  return cookie ? cookie : undefined;
}

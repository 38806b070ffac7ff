/**
 * Admin checks: a request is an admin's when it carries `ADMIN_TOKEN` as its bearer token, or a valid
 * user token whose user id is listed in `ADMIN_USER_IDS`.
 *
 * @module
 */
import type { Context } from "hono";
import type { Config } from "../config.ts";
import type { Authenticator } from "./auth/authenticator.ts";
import { HttpError } from "./errors.ts";

/** Throws 401/403 unless the request is an admin's. */
export async function requireAdmin(c: Context, config: Config, auth: Authenticator): Promise<void> {
  const header = c.req.header("authorization") ?? "";
  const bearer = header.match(/^Bearer\s+(.+)$/i)?.[1]?.trim();
  const { adminToken, adminUserIds } = config.auth;
  if (bearer && adminToken && timingSafeEqual(bearer, adminToken)) return;
  const result = await auth.check(c);
  // No credentials, or credentials that prove nothing (a wrong token): 401. A known non-admin: 403.
  if (!result.ok) throw new HttpError("unauthorized", "admin credentials required");
  if (!adminUserIds.includes(result.identity.userId)) {
    throw new HttpError("forbidden", "Admins only");
  }
}

/** Compares secrets without an early exit, so they cannot be guessed byte by byte from timings. */
export function timingSafeEqual(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}

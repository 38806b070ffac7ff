/**
 * Who is calling, for rate limits: the user when a token was sent, else the client address.
 *
 * @module
 */
import type { Context } from "hono";
import type { Identity } from "../sync/user/identity.ts";

/** `user:<id>` for authenticated callers, `ip:<address>` otherwise. */
export function callerKey(c: Context, identity: Identity | undefined): string {
  if (identity) return `user:${identity.userId}`;
  // Deno.serve hands its connection info to Hono as the environment.
  const info = c.env as { remoteAddr?: { hostname?: string } } | undefined;
  return `ip:${info?.remoteAddr?.hostname ?? "unknown"}`;
}

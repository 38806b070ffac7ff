/**
 * While the server drains for shutdown, refuse new work with 503 and `Retry-After` so that load
 * balancers and clients go elsewhere.
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";
import type { Lifecycle } from "../lifecycle.ts";
import { HttpError } from "../errors.ts";

/** Refuses requests once `lifecycle` is draining. */
export function refuseWhileDraining(lifecycle: Lifecycle): MiddlewareHandler {
  return async (c, next) => {
    if (lifecycle.draining) {
      c.header("Retry-After", "1");
      throw new HttpError("unavailable", "Server is restarting; retry shortly");
    }
    await next();
  };
}

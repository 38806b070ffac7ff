/**
 * Logs one structured line per request: method, path (without the query, which may hold tokens),
 * status, duration and request id. The web app's static files are logged at debug level: a page
 * load fetches dozens of them.
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";
import type { Logger } from "../../log.ts";

/** Request-logging middleware. Expects the request-id middleware to run first. */
export function requestLog(log: Logger): MiddlewareHandler {
  return async (c, next) => {
    const started = performance.now();
    await next();
    const status = c.res.status;
    const fields = {
      requestId: c.get("requestId"),
      method: c.req.method,
      path: c.req.path,
      status,
      durationMs: Math.round((performance.now() - started) * 10) / 10,
    };
    if (status >= 500) log.warn("request", fields);
    else if (status < 400 && isStaticAsset(fields.path)) log.debug("request", fields);
    else log.info("request", fields);
  };
}

function isStaticAsset(path: string): boolean {
  return path.startsWith("/assets/") || path === "/favicon.ico";
}

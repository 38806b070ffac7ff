/**
 * Counts requests and their latency by route pattern (never by raw path: ids would make the label set
 * unbounded).
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";
import type { MetricsRegistry } from "../../metrics.ts";

/** Request metrics middleware. */
export function httpMetrics(metrics: MetricsRegistry): MiddlewareHandler {
  const requests = metrics.counter("http_requests_total", "HTTP requests by route and status");
  const duration = metrics.histogram(
    "http_request_duration_seconds",
    "Time to the response head (WebSocket upgrades: to the 101)",
  );
  return async (c, next) => {
    const started = performance.now();
    await next();
    const route = c.req.routePath === "/*" ? "unmatched" : c.req.routePath;
    requests.inc({ method: c.req.method, route, status: String(c.res.status) });
    duration.observe((performance.now() - started) / 1000, { route });
  };
}

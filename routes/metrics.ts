/**
 * `GET /metrics`: this isolate's metrics in the Prometheus text format. With `METRICS_TOKEN` set,
 * scrapers must send `Authorization: Bearer <token>`.
 *
 * @module
 */
import { Hono } from "hono";
import type { MetricsRegistry } from "../metrics.ts";
import type { AppDeps } from "./deps.ts";
import { timingSafeEqual } from "./admin_auth.ts";
import { HttpError } from "./errors.ts";

/** The metrics route. */
export function metricsRoutes(deps: AppDeps, metrics: MetricsRegistry): Hono {
  const token = deps.config.metricsToken;
  const app = new Hono();
  app.get("/metrics", (c) => {
    if (token) {
      const given = c.req.header("authorization")?.replace(/^Bearer /, "") ?? "";
      if (!timingSafeEqual(given, token)) {
        throw new HttpError("unauthorized", "metrics token required");
      }
    }
    c.header("Cache-Control", "no-store");
    return c.body(metrics.render(), 200, { "Content-Type": "text/plain; version=0.0.4" });
  });
  return app;
}

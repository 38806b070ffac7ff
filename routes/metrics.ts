/**
 * `GET /metrics`: this isolate's metrics in the Prometheus text format. With `METRICS_TOKEN` set,
 * scrapers must send `Authorization: Bearer <token>`.
 *
 * @module
 */
import { Hono } from "hono";
import type { MetricsRegistry } from "../metrics.ts";
import type { AppDeps } from "./deps.ts";
import { HttpError } from "./errors.ts";

/** Compares without an early exit, so the token cannot be guessed byte by byte from timings. */
function sameSecret(a: string, b: string): boolean {
  const left = new TextEncoder().encode(a);
  const right = new TextEncoder().encode(b);
  let diff = left.length ^ right.length;
  for (let i = 0; i < Math.max(left.length, right.length); i++) diff |= left[i]! ^ right[i]!;
  return diff === 0;
}

/** The metrics route. */
export function metricsRoutes(deps: AppDeps, metrics: MetricsRegistry): Hono {
  const token = deps.config.metricsToken;
  const app = new Hono();
  app.get("/metrics", (c) => {
    if (token) {
      const given = c.req.header("authorization")?.replace(/^Bearer /, "") ?? "";
      if (!sameSecret(given, token)) throw new HttpError("unauthorized", "metrics token required");
    }
    c.header("Cache-Control", "no-store");
    return c.body(metrics.render(), 200, { "Content-Type": "text/plain; version=0.0.4" });
  });
  return app;
}

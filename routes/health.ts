/**
 * `GET /health` (KV and database checked; 503 naming the failing parts) and `GET /version`.
 *
 * @module
 */
import { Hono } from "hono";
import denoJson from "../deno.json" with { type: "json" };
import { pingKv } from "../sync/kv.ts";
import type { AppDeps } from "./deps.ts";

/** Names of the parts `/health` checks. */
export const HEALTH_PARTS = ["kv", "db"] as const;
/** One checked part. */
export type HealthPart = (typeof HEALTH_PARTS)[number];

/** The `/health` response body. */
export interface HealthBody {
  status: "ok" | "unavailable";
  checks: Record<HealthPart, { ok: boolean; ms: number; error?: string }>;
  /** Present when unhealthy: the parts that failed. */
  failing?: HealthPart[];
}

const CHECK_TIMEOUT_MS = 2_000;

async function timed(
  check: () => Promise<void>,
): Promise<{ ok: boolean; ms: number; error?: string }> {
  const started = performance.now();
  try {
    await check();
    return { ok: true, ms: Math.round(performance.now() - started) };
  } catch (error) {
    return {
      ok: false,
      ms: Math.round(performance.now() - started),
      error: error instanceof Error ? error.message : String(error),
    };
  }
}

/** Health and version routes. */
export function healthRoutes({ kv, database, log }: AppDeps): Hono {
  const app = new Hono();
  app.get("/health", async (c) => {
    const [kvCheck, dbCheck] = await Promise.all([
      timed(() => pingKv(kv, CHECK_TIMEOUT_MS)),
      timed(() => database.ping(CHECK_TIMEOUT_MS)),
    ]);
    const checks = { kv: kvCheck, db: dbCheck };
    const failing = HEALTH_PARTS.filter((part) => !checks[part].ok);
    c.header("Cache-Control", "no-store");
    if (failing.length > 0) {
      log.warn("health check failed", { failing, checks });
      return c.json({ status: "unavailable", checks, failing } satisfies HealthBody, 503);
    }
    return c.json({ status: "ok", checks } satisfies HealthBody);
  });
  app.get("/version", (c) =>
    c.json({
      name: denoJson.name,
      version: denoJson.version,
      deno: Deno.version.deno,
      database: database.kind,
      deployment: Deno.env.get("DENO_DEPLOYMENT_ID") ?? null,
    }));
  return app;
}

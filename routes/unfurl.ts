/**
 * `GET /unfurl?url=…` → `{title, description, image, favicon}` for bookmark cards. The fetching and its
 * SSRF rules live in sync/unfurl/; this only maps failures to statuses: a URL we refuse to fetch is
 * the caller's problem (400), a page that cannot be read is the upstream's (502).
 *
 * @module
 */
import { Hono } from "hono";
import { type Unfurler, UnfurlError, UnfurlFailure } from "../sync/unfurl/unfurl.ts";
import type { KvRateLimiter } from "../sync/user/rate_limit.ts";
import type { Authenticator } from "./auth/authenticator.ts";
import { callerKey } from "./caller.ts";
import { HttpError } from "./errors.ts";

const CLIENT_ERRORS: ReadonlySet<UnfurlError> = new Set([
  UnfurlError.invalid_url,
  UnfurlError.blocked_address,
]);

/** The unfurl route. `auth` identifies signed-in callers (their own budget); `limiter` caps calls. */
export function unfurlRoutes(
  unfurler: Unfurler,
  auth: Authenticator,
  limiter: KvRateLimiter,
): Hono {
  const app = new Hono();
  app.get("/unfurl", async (c) => {
    if (await limiter.isLimited(callerKey(c, await auth.optional(c).catch(() => undefined)))) {
      throw new HttpError("rate_limited", "too many unfurl requests");
    }
    const url = c.req.query("url");
    if (!url) throw new HttpError("bad_request", "url is required", { reason: "invalid_url" });
    try {
      const result = await unfurler.unfurl(url);
      c.header("Cache-Control", "public, max-age=3600");
      return c.json(result);
    } catch (error) {
      if (!(error instanceof UnfurlFailure)) throw error;
      throw new HttpError(
        CLIENT_ERRORS.has(error.reason) ? "bad_request" : "bad_gateway",
        error.message,
        { reason: error.reason },
      );
    }
  });
  return app;
}

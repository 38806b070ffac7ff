/**
 * The dev identity provider's routes (only mounted when it is enabled): `POST /auth/dev/token` and
 * `GET /.well-known/jwks.json`.
 *
 * @module
 */
import { Hono } from "hono";
import { z } from "zod";
import { HttpError } from "../errors.ts";
import { readJsonBody } from "../body.ts";
import type { DevIdentityProvider } from "./dev_identity.ts";

const tokenRequest = z.strictObject({
  userId: z.string().min(1).max(200),
  name: z.string().max(1000).optional(),
  email: z.string().max(1000).optional(),
});

/** Routes of the dev identity provider. */
export function devIdentityRoutes(provider: DevIdentityProvider): Hono {
  const app = new Hono();
  app.post("/auth/dev/token", async (c) => {
    const body = await readJsonBody(c, 16 * 1024);
    const parsed = tokenRequest.safeParse(body);
    if (!parsed.success) {
      throw new HttpError("bad_request", "Expected {userId, name?, email?}", {
        issues: parsed.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`),
      });
    }
    const { token, expiresAt } = await provider.issue(parsed.data);
    c.header("Cache-Control", "no-store");
    return c.json({ token, userId: parsed.data.userId, expiresAt });
  });
  app.get("/.well-known/jwks.json", async (c) => {
    c.header("Cache-Control", "public, max-age=300");
    return c.json(await provider.jwks());
  });
  return app;
}

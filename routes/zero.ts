/**
 * Rocicorp Zero's application endpoints, called by zero-cache (specs/zero-sync.md):
 *
 * - `POST /app/zero/push?schema=zero_0&appID=zero`: custom-mutator pushes, run by Zero's own
 *   `handleMutateRequest` on this server's Postgres (mutation ids, replays, out-of-order pushes and
 *   results in `zero_0` are Zero's), with the mutators of sync/zero/server_mutators.ts, which apply
 *   the user-data channel's rules.
 * - `POST /app/zero/query?schema=zero_0&appID=zero`: the synced queries of sync/zero/queries.ts,
 *   turned into ASTs for the caller.
 *
 * Both take the client's JWT (`Authorization: Bearer`, forwarded by zero-cache) and verify it with
 * the server's verifier: a missing or invalid token is 401 and nothing runs. Thin: authenticate,
 * read the body within its limit, hand over to Zero's helpers.
 *
 * @module
 */
import { getMutator, InputValidationError, mustGetQuery } from "@rocicorp/zero";
import { ApplicationError, handleMutateRequest, handleQueryRequest } from "@rocicorp/zero/server";
import { zeroKysely } from "@rocicorp/zero/server/adapters/kysely";
import { Hono } from "hono";
import { serverMetrics } from "../metrics.ts";
import { withSpan } from "../telemetry.ts";
import { queries } from "../sync/zero/queries.ts";
import { schema } from "../sync/zero/schema.ts";
import { serverMutators } from "../sync/zero/server_mutators.ts";
import type { AppDeps } from "./deps.ts";
import { readJsonBody } from "./body.ts";
import type { UserData } from "./user_sync.ts";

/** A mutation's result as Zero answers it (`{}` or an error kind). */
type MutationResult = { result: { error?: string } };

/** `ok`, `app_error` or `already_processed`: how one mutation of a push ended. */
function outcomeOf(result: MutationResult["result"]): string {
  switch (result.error) {
    case undefined:
      return "ok";
    case "alreadyProcessed":
      return "already_processed";
    default:
      return "app_error";
  }
}

/** The Zero endpoints. */
export function zeroRoutes(deps: AppDeps, userData: UserData): Hono {
  const dbProvider = zeroKysely(schema, deps.database.db);
  const mutators = serverMutators(userData.service.ruleOptions());
  const metrics = deps.metrics && serverMetrics(deps.metrics);
  const maxBytes = deps.config.limits.maxMessageBytes;
  const app = new Hono();

  app.post("/app/zero/push", async (c) => {
    const { userId } = await userData.auth.required(c);
    const body = await readJsonBody(c, maxBytes);
    const started = performance.now();
    const response = await withSpan(
      "zero.push",
      { "enduser.id": userId },
      () =>
        handleMutateRequest({
          dbProvider,
          userID: userId,
          query: c.req.query(),
          body: body as never,
          logLevel: "error",
          handler: async (transact) => {
            // The user-data channel's per-user budget, shared by both transports.
            if (await userData.service.isMutationLimited(userId)) {
              throw new ApplicationError("rate_limit_exceeded");
            }
            return await transact(async (tx, name, args) => {
              const mutator = getMutator(mutators, name);
              if (!mutator) {
                throw new ApplicationError("bad_request", { details: `no mutator named ${name}` });
              }
              try {
                await mutator.fn({ tx, args, ctx: { userID: userId } } as never);
              } catch (error) {
                // Arguments of the wrong shape (zod): the client's bad request, like a bad row.
                if (error instanceof InputValidationError) {
                  throw new ApplicationError("bad_request", { details: error.message });
                }
                throw error;
              }
            });
          },
        }),
    );
    if (metrics) {
      metrics.zeroPushDuration.observe((performance.now() - started) / 1000);
      if ("mutations" in response) {
        for (const mutation of response.mutations as MutationResult[]) {
          metrics.zeroMutations.inc({ outcome: outcomeOf(mutation.result) });
        }
      } else metrics.zeroMutations.inc({ outcome: "push_failed" });
    }
    return c.json(response);
  });

  app.post("/app/zero/query", async (c) => {
    const { userId } = await userData.auth.required(c);
    const body = await readJsonBody(c, maxBytes);
    const response = await withSpan(
      "zero.query",
      { "enduser.id": userId },
      () =>
        handleQueryRequest({
          schema,
          userID: userId,
          query: c.req.query(),
          body: body as never,
          logLevel: "error",
          handler: (name, args) =>
            mustGetQuery(queries, name).fn({ args, ctx: { userID: userId } } as never),
        }),
    );
    return c.json(response);
  });

  return app;
}

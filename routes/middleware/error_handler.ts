/**
 * Turns anything thrown by a handler into a JSON error body. Unexpected errors become a 500 without
 * details (the stack goes to the log, tagged with the request id the client also sees).
 *
 * @module
 */
import type { Context, ErrorHandler, NotFoundHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { Logger } from "../../log.ts";
import { type ErrorBody, HTTP_ERRORS, HttpError, type HttpErrorCode } from "../errors.ts";

function codeForStatus(status: number): HttpErrorCode {
  const match = Object.entries(HTTP_ERRORS).find(([, s]) => s === status);
  return (match?.[0] as HttpErrorCode | undefined) ??
    (status >= 500 ? "internal_error" : "bad_request");
}

function respond(c: Context, status: number, body: Omit<ErrorBody, "requestId">) {
  const requestId = String(c.get("requestId") ?? "");
  return c.json({ ...body, requestId } satisfies ErrorBody, status as ContentfulStatusCode);
}

/** The app's error handler. */
export function errorHandler(log: Logger): ErrorHandler {
  return (error, c) => {
    if (error instanceof HttpError) {
      return respond(c, error.status, {
        error: {
          code: error.code,
          message: error.message,
          ...(error.details ? { details: error.details } : {}),
        },
      });
    }
    if (error instanceof HTTPException && error.status < 500) {
      return respond(c, error.status, {
        error: { code: codeForStatus(error.status), message: error.message || "Request rejected" },
      });
    }
    log.error("unhandled error", { requestId: c.get("requestId"), path: c.req.path, error });
    return respond(c, 500, {
      error: { code: "internal_error", message: "Internal server error" },
    });
  };
}

/** 404 for unknown routes, in the same JSON shape. */
export const notFoundHandler: NotFoundHandler = (c) =>
  respond(c, 404, {
    error: { code: "not_found", message: `No route for ${c.req.method} ${c.req.path}` },
  });

/**
 * Typed HTTP errors. Handlers throw {@link HttpError}; the error handler turns it into a JSON body
 * `{ error: { code, message }, requestId }` with the matching status.
 *
 * @module
 */

/** Error codes returned in HTTP error bodies, with their status. */
export const HTTP_ERRORS = {
  bad_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  range_not_satisfiable: 416,
  rate_limited: 429,
  internal_error: 500,
  bad_gateway: 502,
  unavailable: 503,
} as const;

/** One of the {@link HTTP_ERRORS} codes. */
export type HttpErrorCode = keyof typeof HTTP_ERRORS;

/** An error with an HTTP status and a code a client can act on. `message` is shown to the client. */
export class HttpError extends Error {
  readonly code: HttpErrorCode;
  readonly status: (typeof HTTP_ERRORS)[HttpErrorCode];
  readonly details: Record<string, unknown> | undefined;
  constructor(code: HttpErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = "HttpError";
    this.code = code;
    this.status = HTTP_ERRORS[code];
    this.details = details;
  }
}

/** The JSON body of every error response. */
export interface ErrorBody {
  error: { code: HttpErrorCode; message: string; details?: Record<string, unknown> };
  requestId: string;
}

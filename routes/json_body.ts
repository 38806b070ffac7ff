/**
 * Reads a JSON request body with a size limit: 413 when the declared or actual size is over it,
 * 400 when the body is not JSON.
 *
 * @module
 */
import type { Context } from "hono";
import { HttpError } from "./errors.ts";

/** The parsed body (validate it with zod next). */
export async function readJsonBody(c: Context, maxBytes: number): Promise<unknown> {
  if (Number(c.req.header("content-length") ?? 0) > maxBytes) {
    throw new HttpError("payload_too_large", `body exceeds ${maxBytes} bytes`);
  }
  const text = await c.req.text();
  if (text.length > maxBytes) {
    throw new HttpError("payload_too_large", `body exceeds ${maxBytes} bytes`);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpError("bad_request", "body is not JSON");
  }
}

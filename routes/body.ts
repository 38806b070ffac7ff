/**
 * Reading request bodies within a limit: a declared `Content-Length` over it is refused before
 * anything is read, and a body that streams past it (chunked, or lying about its length) is
 * cancelled at the limit. Either way the answer is 413 and at most `maxBytes` (plus one chunk) was
 * read.
 *
 * @module
 */
import type { Context } from "hono";
import { HttpError } from "./errors.ts";

function tooLarge(maxBytes: number): HttpError {
  return new HttpError("payload_too_large", `body exceeds ${maxBytes} bytes`, { limit: maxBytes });
}

/** The body's bytes; throws 413 (and stops reading) once it grows past `maxBytes`. */
export async function readBodyCapped(request: Request, maxBytes: number): Promise<Uint8Array> {
  if (Number(request.headers.get("content-length") ?? 0) > maxBytes) {
    await request.body?.cancel().catch(() => {});
    throw tooLarge(maxBytes);
  }
  if (!request.body) return new Uint8Array();
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => {});
      throw tooLarge(maxBytes);
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}

/** The body as UTF-8 text, within `maxBytes` (see {@link readBodyCapped}). */
export async function readTextCapped(c: Context, maxBytes: number): Promise<string> {
  return new TextDecoder().decode(await readBodyCapped(c.req.raw, maxBytes));
}

/** The parsed JSON body (validate it with zod next): 413 over `maxBytes`, 400 when not JSON. */
export async function readJsonBody(c: Context, maxBytes: number): Promise<unknown> {
  const text = await readTextCapped(c, maxBytes);
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpError("bad_request", "body is not JSON");
  }
}

/**
 * Like {@link readJsonBody}, but an empty body (none sent) is `{}`: for routes whose every field is
 * optional. A body that is sent and does not parse is still 400.
 */
export async function readOptionalJsonBody(c: Context, maxBytes: number): Promise<unknown> {
  const text = await readTextCapped(c, maxBytes);
  if (text.trim() === "") return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpError("bad_request", "body is not JSON");
  }
}

/**
 * The worker behind {@link openPGlite}'s first start: creates a PGlite cluster in the data directory
 * it is sent, closes it and reports back. initdb grows PGlite's WebAssembly memory to ~900 MB and a
 * WebAssembly memory never shrinks, so it runs here, in an isolate that is thrown away afterwards.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { PGlite } from "@electric-sql/pglite";
import type { PGliteInitReply } from "./pglite.ts";

self.onmessage = async (event: MessageEvent<{ dataDir: string }>) => {
  let reply: PGliteInitReply;
  try {
    const pglite = await PGlite.create({ dataDir: event.data.dataDir });
    await pglite.close();
    reply = { done: true };
  } catch (error) {
    reply = { done: false, error: describe(error) };
  }
  self.postMessage(reply);
};

/** PGlite's file system throws plain objects (`{ name: "ErrnoError", errno: 54 }`), not Errors. */
function describe(error: unknown): string {
  if (error instanceof Error) return error.message;
  const text = String(error);
  if (text !== "[object Object]") return text;
  try {
    return JSON.stringify(error);
  } catch {
    return text;
  }
}

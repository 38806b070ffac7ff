/**
 * The worker behind {@link GzipWorker}: gzips the bytes it is sent and sends them back (both ways
 * transferred, not copied).
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { gzipInThread } from "./gzip.ts";

self.onmessage = async (event: MessageEvent<{ id: number; bytes: Uint8Array }>) => {
  const { id, bytes } = event.data;
  try {
    const compressed = await gzipInThread(bytes);
    self.postMessage({ id, bytes: compressed }, [compressed.buffer]);
  } catch (error) {
    self.postMessage({ id, error: error instanceof Error ? error.message : String(error) });
  }
};

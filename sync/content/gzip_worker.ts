/**
 * The worker behind {@link GzipWorker}: compresses the chunks of each job as they arrive and sends
 * the result back at the job's end (chunks and result transferred, not copied).
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { type GzipReply, type GzipRequest, type GzipSink, gzipStream } from "./gzip.ts";

const jobs = new Map<number, GzipSink>();

self.onmessage = async (event: MessageEvent<GzipRequest>) => {
  const request = event.data;
  let job = jobs.get(request.id);
  if (!job) jobs.set(request.id, job = gzipStream());
  if ("bytes" in request) return job.write(request.bytes);
  jobs.delete(request.id);
  let reply: GzipReply;
  try {
    const bytes = await job.end();
    reply = { id: request.id, bytes };
    self.postMessage(reply, [bytes.buffer]);
  } catch (error) {
    reply = { id: request.id, error: error instanceof Error ? error.message : String(error) };
    self.postMessage(reply);
  }
};

/**
 * gzip for document copies. Compressing a 5,000-shape document (~1.5 MB of JSON) takes 20–50 ms,
 * all of it on the calling thread (`CompressionStream` and `node:zlib` both run inside the call),
 * and that thread also serves the room's sessions: a history version every few seconds showed up
 * as fan-out p99 spikes. Large inputs therefore go to one worker thread; small ones, and every one
 * when workers are unavailable, are compressed in place.
 *
 * @module
 */

/** Below this many bytes a round trip to the worker costs more than it saves. */
const OFFLOAD_MIN_BYTES = 64 * 1024;

/** gzip on the calling thread. */
export async function gzipInThread(bytes: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream()
    .pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

type Reply = { id: number; bytes: Uint8Array<ArrayBuffer> } | { id: number; error: string };

/** gzip off the calling thread, in one lazily started worker; {@link close} stops it. */
export class GzipWorker {
  #worker: Worker | undefined;
  #unavailable = false;
  #closed = false;
  #nextId = 0;
  /** Inputs compressed by the worker so far (observability, tests). */
  offloaded = 0;
  readonly #pending = new Map<
    number,
    {
      bytes: Uint8Array;
      resolve: (bytes: Uint8Array<ArrayBuffer>) => void;
      reject: (e: Error) => void;
    }
  >();

  /** Compresses `bytes` (copied to the worker: ~1 ms for 1.5 MB, and kept for a fallback). */
  gzip(bytes: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
    const worker = bytes.byteLength >= OFFLOAD_MIN_BYTES ? this.#start() : undefined;
    if (!worker) return gzipInThread(bytes);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { bytes, resolve, reject });
      worker.postMessage({ id, bytes });
    });
  }

  /** Stops the worker; later calls compress in place. */
  close(): void {
    this.#closed = true;
    this.#worker?.terminate();
    this.#worker = undefined;
    for (const { reject } of this.#pending.values()) reject(new Error("gzip worker closed"));
    this.#pending.clear();
  }

  #start(): Worker | undefined {
    if (this.#worker || this.#unavailable || this.#closed) return this.#worker;
    try {
      const worker = new Worker(new URL("./gzip_worker.ts", import.meta.url), { type: "module" });
      worker.onmessage = (event: MessageEvent<Reply>) => {
        const reply = event.data;
        const job = this.#pending.get(reply.id);
        if (!job) return;
        this.#pending.delete(reply.id);
        if ("error" in reply) job.reject(new Error(reply.error));
        else {
          this.offloaded++;
          job.resolve(reply.bytes);
        }
      };
      worker.onerror = (event) => {
        // A worker that cannot run (a platform without workers): compress in place from now on.
        event.preventDefault();
        this.#unavailable = true;
        this.#worker?.terminate();
        this.#worker = undefined;
        const failed = [...this.#pending.values()];
        this.#pending.clear();
        for (const job of failed) gzipInThread(job.bytes).then(job.resolve, job.reject);
      };
      this.#worker = worker;
    } catch {
      this.#unavailable = true;
    }
    return this.#worker;
  }
}

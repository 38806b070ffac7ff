/**
 * gzip for document copies, fed a chunk at a time. Compressing a 5,000-shape document (~1.5 MB of
 * JSON) takes 20–50 ms on the calling thread (`CompressionStream` and `node:zlib` both compress
 * inside the call), and joining and encoding a big document's text costs as much again; that thread
 * also serves the room's sessions. So the text is joined and encoded in chunks of
 * {@link CHUNK_CHARS}, with a macrotask turn between chunks, and the chunks go to one worker thread
 * that compresses them (transferred, not copied). Small documents, and every one where workers are
 * unavailable, are compressed in place, a chunk per turn.
 *
 * @module
 */
import { macrotask } from "../next_turn.ts";

/** Characters of text encoded (and, in place, compressed) per macrotask turn. */
export const CHUNK_CHARS = 256 * 1024;
/** Below this many characters a round trip to the worker costs more than it saves. */
const OFFLOAD_MIN_CHARS = 64 * 1024;

/** A compressed text: the gzip bytes and the size of the UTF-8 text they hold. */
export interface CompressedText {
  data: Uint8Array<ArrayBuffer>;
  size: number;
}

/** Compresses the text made of `parts` (iterated again if a worker is lost meanwhile). */
export type TextCompressor = (parts: Iterable<string>) => Promise<CompressedText>;

/** Where the encoded chunks of one text go, in order. */
export interface GzipSink {
  write(bytes: Uint8Array<ArrayBuffer>): void;
  /** The compressed bytes of everything written. */
  end(): Promise<Uint8Array<ArrayBuffer>>;
}

/** A gzip stream on this thread: each write is compressed as it comes. */
export function gzipStream(): GzipSink {
  const stream = new CompressionStream("gzip");
  const writer = stream.writable.getWriter();
  const output = new Response(stream.readable).arrayBuffer();
  // A failure surfaces from end(); the writes queued before it must not reject unhandled.
  output.catch(() => {});
  return {
    write(bytes) {
      writer.write(bytes).catch(() => {});
    },
    async end() {
      await writer.close();
      return new Uint8Array(await output);
    },
  };
}

/** The text of `parts` in pieces of at least {@link CHUNK_CHARS} (the last one may be shorter). */
function* chunksOf(parts: Iterable<string>): Generator<string> {
  let pending: string[] = [];
  let chars = 0;
  for (const part of parts) {
    pending.push(part);
    chars += part.length;
    if (chars >= CHUNK_CHARS) {
      yield pending.join("");
      pending = [];
      chars = 0;
    }
  }
  if (pending.length > 0) yield pending.join("");
}

/** Encodes the chunks into `sink`, one per macrotask turn. */
async function compressChunks(
  sink: GzipSink,
  first: IteratorResult<string>,
  rest: Iterator<string>,
): Promise<CompressedText> {
  const encoder = new TextEncoder();
  let size = 0;
  try {
    for (let next = first; !next.done;) {
      const bytes = encoder.encode(next.value);
      size += bytes.byteLength;
      sink.write(bytes);
      next = rest.next();
      if (!next.done) await macrotask();
    }
  } catch (error) {
    // The text could not be built: the stream (or the worker's job) is ended all the same.
    sink.end().catch(() => {});
    throw error;
  }
  return { data: await sink.end(), size };
}

/** gzip of the text of `parts` on this thread, a chunk per macrotask turn. */
export function gzipText(parts: Iterable<string>): Promise<CompressedText> {
  const chunks = chunksOf(parts);
  return compressChunks(gzipStream(), chunks.next(), chunks);
}

/** A message to the worker: a chunk of job `id`, or its end. */
export type GzipRequest = { id: number; bytes: Uint8Array<ArrayBuffer> } | {
  id: number;
  end: true;
};
/** The worker's answer to a job's end. */
export type GzipReply = { id: number; bytes: Uint8Array<ArrayBuffer> } | {
  id: number;
  error: string;
};

/** A job whose worker went away before answering: it is compressed again in place. */
class WorkerLost extends Error {}

/** gzip off the calling thread, in one lazily started worker; {@link close} stops it. */
export class GzipWorker {
  #worker: Worker | undefined;
  #unavailable = false;
  #closed = false;
  #nextId = 0;
  /** Texts compressed by the worker so far (observability, tests). */
  offloaded = 0;
  readonly #pending = new Map<
    number,
    { resolve: (bytes: Uint8Array<ArrayBuffer>) => void; reject: (e: Error) => void }
  >();

  /** gzip of the text of `parts`: big texts by the worker, small ones in place. */
  async gzipText(parts: Iterable<string>): Promise<CompressedText> {
    const chunks = chunksOf(parts);
    const first = chunks.next();
    // A first chunk shorter than CHUNK_CHARS is the whole text.
    const small = first.done || first.value.length < OFFLOAD_MIN_CHARS;
    const worker = small ? undefined : this.#start();
    if (!worker) return compressChunks(gzipStream(), first, chunks);
    try {
      const compressed = await compressChunks(this.#sink(worker), first, chunks);
      this.offloaded++;
      return compressed;
    } catch (error) {
      if (!(error instanceof WorkerLost)) throw error;
      return gzipText(parts);
    }
  }

  /** Stops the worker; later calls compress in place (and so do the jobs it had). */
  close(): void {
    this.#closed = true;
    this.#stop();
  }

  #sink(worker: Worker): GzipSink {
    const id = this.#nextId++;
    const post = (request: GzipRequest, transfer: Transferable[] = []) => {
      if (this.#worker === worker) worker.postMessage(request, transfer);
    };
    return {
      write: (bytes) => post({ id, bytes }, [bytes.buffer]),
      end: () =>
        new Promise((resolve, reject) => {
          if (this.#worker !== worker) return reject(new WorkerLost());
          this.#pending.set(id, { resolve, reject });
          post({ id, end: true });
        }),
    };
  }

  #stop(): void {
    this.#worker?.terminate();
    this.#worker = undefined;
    const lost = [...this.#pending.values()];
    this.#pending.clear();
    for (const job of lost) job.reject(new WorkerLost());
  }

  #start(): Worker | undefined {
    if (this.#worker || this.#unavailable || this.#closed) return this.#worker;
    try {
      const worker = new Worker(new URL("./gzip_worker.ts", import.meta.url), { type: "module" });
      worker.onmessage = (event: MessageEvent<GzipReply>) => {
        const reply = event.data;
        const job = this.#pending.get(reply.id);
        if (!job) return;
        this.#pending.delete(reply.id);
        if ("error" in reply) job.reject(new Error(reply.error));
        else job.resolve(reply.bytes);
      };
      worker.onerror = (event) => {
        // A worker that cannot run (a platform without workers): compress in place from now on.
        event.preventDefault();
        this.#unavailable = true;
        this.#stop();
      };
      this.#worker = worker;
    } catch {
      this.#unavailable = true;
    }
    return this.#worker;
  }
}

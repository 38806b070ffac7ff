/**
 * {@link BlobStore} on the local filesystem: `<dir>/objects/<name>` holds the bytes,
 * `<dir>/meta/<name>.json` the metadata, `<dir>/tmp/` writes in progress. Writes go to a temporary file first and are renamed into place, so a reader never sees
 * half an object. Names are validated again here (defence in depth against traversal).
 *
 * @module
 */
import { join } from "node:path";
import {
  type BlobInfo,
  type BlobObject,
  type BlobStore,
  type ByteRange,
  contentEtag,
  isValidObjectName,
} from "./blob_store.ts";

/** Blob store under a local directory (created on first write). */
export class FsBlobStore implements BlobStore {
  readonly #dir: string;
  constructor(dir: string) {
    this.#dir = dir;
  }

  #path(name: string): string {
    if (!isValidObjectName(name)) {
      throw new TypeError(`invalid object name: ${JSON.stringify(name)}`);
    }
    return join(this.#dir, "objects", name);
  }

  #metaPath(name: string): string {
    return join(this.#dir, "meta", `${name}.json`);
  }

  async put(name: string, bytes: Uint8Array, contentType: string): Promise<BlobInfo> {
    const path = this.#path(name);
    for (const sub of ["objects", "meta", "tmp"]) {
      await Deno.mkdir(join(this.#dir, sub), { recursive: true });
    }
    const info: BlobInfo = {
      size: bytes.byteLength,
      contentType,
      etag: await contentEtag(bytes),
      uploadedAt: Date.now(),
    };
    const tmp = join(this.#dir, "tmp", crypto.randomUUID());
    await Deno.writeFile(tmp, bytes);
    await Deno.writeTextFile(`${tmp}.meta`, JSON.stringify(info));
    // Metadata first: an object file without its metadata is treated as absent.
    await Deno.rename(`${tmp}.meta`, this.#metaPath(name));
    await Deno.rename(tmp, path);
    return info;
  }

  async head(name: string): Promise<BlobInfo | null> {
    const path = this.#path(name);
    try {
      const info = JSON.parse(await Deno.readTextFile(this.#metaPath(name))) as BlobInfo;
      const stat = await Deno.stat(path);
      // A replaced object whose metadata was written but not its bytes yet: report what is there.
      return stat.size === info.size ? info : { ...info, size: stat.size };
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return null;
      throw error;
    }
  }

  async get(name: string, range?: ByteRange): Promise<BlobObject | null> {
    const info = await this.head(name);
    if (!info) return null;
    let file: Deno.FsFile;
    try {
      file = await Deno.open(this.#path(name), { read: true });
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return null;
      throw error;
    }
    if (!range) return { info, body: file.readable };
    await file.seek(range.start, Deno.SeekMode.Start);
    let remaining = range.end - range.start + 1;
    const reader = file.readable.getReader();
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (remaining <= 0) {
          controller.close();
          await reader.cancel();
          return;
        }
        const { done, value } = await reader.read();
        if (done) {
          controller.close();
          return;
        }
        const chunk = value.byteLength > remaining ? value.subarray(0, remaining) : value;
        remaining -= chunk.byteLength;
        controller.enqueue(chunk);
      },
      cancel: () => reader.cancel(),
    });
    return { info, body };
  }

  async delete(name: string): Promise<void> {
    const path = this.#path(name);
    for (const target of [path, this.#metaPath(name)]) {
      try {
        await Deno.remove(target);
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
    }
  }
}

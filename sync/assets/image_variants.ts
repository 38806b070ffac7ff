/**
 * Smaller copies of uploaded images for the width the editor draws them at (`?w=` on an upload's
 * URL): PNG and JPEG, resized with ImageScript (npm `imagescript`, WASM codecs), kept in a
 * byte-bounded cache in memory. Widths are rounded up to a few steps so that one image has at most
 * a handful of variants. Anything else (other types, an image already that small, one too large to
 * decode safely) is served as uploaded.
 *
 * @module
 */
import { decode, Image } from "imagescript";

/** Widths a variant is made at: a request is rounded up to the next one. */
export const VARIANT_WIDTHS: readonly number[] = [64, 128, 256, 512, 1024, 2048];
/** Types resized; the rest (GIF animations, SVG, WebP, AVIF, video) are served as uploaded. */
const RESIZED_TYPES: ReadonlySet<string> = new Set(["image/png", "image/jpeg"]);
/** Images with more pixels than this are not decoded (4 bytes each in memory while resizing). */
const MAX_DECODED_PIXELS = 40_000_000;
const JPEG_QUALITY = 82;

/** A resized copy. */
export interface ImageVariant {
  bytes: Uint8Array;
  contentType: string;
  width: number;
}

/** Options of {@link ImageVariants}. */
export interface ImageVariantOptions {
  /** Bytes of variants kept in memory at most (least recently used go first). */
  maxCacheBytes?: number;
}

/** Makes and caches resized copies of uploaded images. */
export class ImageVariants {
  readonly #maxBytes: number;
  /** By `objectName@width`, in use order (a Map iterates oldest first). */
  readonly #cache = new Map<string, ImageVariant | null>();
  readonly #making = new Map<string, Promise<ImageVariant | null>>();
  #bytes = 0;

  constructor(options: ImageVariantOptions = {}) {
    this.#maxBytes = options.maxCacheBytes ?? 32 * 1024 * 1024;
  }

  /** The step a requested width is served at, or `null` when none is smaller than asked for. */
  static stepFor(width: number): number | null {
    return VARIANT_WIDTHS.find((step) => step >= width) ?? null;
  }

  /** Whether images of `contentType` get variants. */
  static resizes(contentType: string): boolean {
    return RESIZED_TYPES.has(contentType);
  }

  /**
   * `objectName` at `step` pixels wide, or `null` when the original should be served (it is not
   * wider, or cannot be decoded). `load` reads the original's bytes, only on a cache miss.
   */
  async variant(
    objectName: string,
    contentType: string,
    step: number,
    load: () => Promise<Uint8Array>,
  ): Promise<ImageVariant | null> {
    const key = `${objectName}@${step}`;
    if (this.#cache.has(key)) {
      const cached = this.#cache.get(key)!;
      this.#cache.delete(key);
      this.#cache.set(key, cached);
      return cached;
    }
    let making = this.#making.get(key);
    if (!making) {
      making = load().then((bytes) => resize(bytes, contentType, step)).catch(() => null);
      this.#making.set(key, making);
    }
    try {
      const variant = await making;
      this.#remember(key, variant);
      return variant;
    } finally {
      this.#making.delete(key);
    }
  }

  #remember(key: string, variant: ImageVariant | null): void {
    if (this.#cache.has(key)) return;
    const size = variant?.bytes.byteLength ?? 0;
    if (size > this.#maxBytes) return;
    this.#cache.set(key, variant);
    this.#bytes += size;
    for (const [oldKey, old] of this.#cache) {
      if (this.#bytes <= this.#maxBytes) break;
      this.#cache.delete(oldKey);
      this.#bytes -= old?.bytes.byteLength ?? 0;
    }
  }
}

async function resize(
  bytes: Uint8Array,
  contentType: string,
  step: number,
): Promise<ImageVariant | null> {
  const size = imageSize(bytes, contentType);
  if (!size || size.width <= step || size.width * size.height > MAX_DECODED_PIXELS) return null;
  const image = await decode(bytes);
  if (!(image instanceof Image)) return null;
  image.resize(step, Image.RESIZE_AUTO);
  const encoded = contentType === "image/jpeg"
    ? await image.encodeJPEG(JPEG_QUALITY)
    : await image.encode();
  // A variant that is not smaller is no use.
  if (encoded.byteLength >= bytes.byteLength) return null;
  return { bytes: encoded, contentType, width: image.width };
}

/**
 * Width and height from the header, before anything is decoded (a small file may claim a huge
 * image): PNG's IHDR, JPEG's first start-of-frame marker.
 */
export function imageSize(
  bytes: Uint8Array,
  contentType: string,
): { width: number; height: number } | null {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (contentType === "image/png") {
    if (bytes.byteLength < 24 || view.getUint32(12) !== 0x49484452) return null; // "IHDR"
    return { width: view.getUint32(16), height: view.getUint32(20) };
  }
  if (contentType === "image/jpeg") {
    let offset = 2;
    while (offset + 9 < bytes.byteLength) {
      if (bytes[offset] !== 0xff) return null;
      const marker = bytes[offset + 1]!;
      const length = view.getUint16(offset + 2);
      // SOF0–SOF15, except DHT (C4), JPG (C8) and DAC (CC).
      if (
        marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc
      ) {
        return { height: view.getUint16(offset + 5), width: view.getUint16(offset + 7) };
      }
      offset += 2 + length;
    }
  }
  return null;
}

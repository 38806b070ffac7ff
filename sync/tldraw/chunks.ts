/**
 * Reassembles the client's chunked frames (spec 1.2). Messages of 262,144 characters or more arrive as
 * consecutive frames prefixed `<n>_`, where `n` counts the pieces still to come (`0_` is the last).
 * A frame starting with `{` is a whole message.
 *
 * @module
 */

/** Why a frame could not be assembled. Chunk errors close the socket without a code (reference). */
export const ChunkError = {
  /** A whole `{...}` frame that is not valid JSON: the reference answers 4099 UNKNOWN_ERROR. */
  invalid_json: "invalid_json",
  /** A frame that is neither JSON nor a `<n>_` piece. */
  bad_prefix: "bad_prefix",
  /** A piece whose counter does not match the sequence, or a whole frame mid-sequence. */
  wrong_order: "wrong_order",
  /** All pieces arrived but the joined text is not JSON. */
  invalid_chunked_json: "invalid_chunked_json",
  /** The message (whole or joined) is longer than allowed. */
  too_large: "too_large",
} as const;
/** One of the {@link ChunkError} values. */
export type ChunkError = (typeof ChunkError)[keyof typeof ChunkError];

/** What one frame yields: nothing yet, a parsed message, or an error (the sequence is reset). */
export type ChunkResult =
  | { kind: "pending" }
  | { kind: "message"; data: unknown; text: string }
  | { kind: "error"; error: ChunkError };

// `s` flag: a piece may contain newlines or U+2028 (JSON strings keep them verbatim).
const CHUNK_RE = /^(\d+)_(.*)$/s;

/** One per session: keeps the pieces of a message in progress. */
export class ChunkAssembler {
  #pieces: string[] = [];
  #total = 0;
  #length = 0;
  readonly #maxChars: number;

  /** @param maxChars longest message accepted (characters, whole or joined). */
  constructor(maxChars = Number.POSITIVE_INFINITY) {
    this.#maxChars = maxChars;
  }

  /** Feeds one text frame. */
  push(frame: string): ChunkResult {
    if (frame.startsWith("{")) {
      const midSequence = this.#total > 0;
      this.#reset();
      if (midSequence) return { kind: "error", error: ChunkError.wrong_order };
      if (frame.length > this.#maxChars) return { kind: "error", error: ChunkError.too_large };
      return parse(frame, ChunkError.invalid_json);
    }
    const match = CHUNK_RE.exec(frame);
    if (!match) {
      this.#reset();
      return { kind: "error", error: ChunkError.bad_prefix };
    }
    const remaining = Number(match[1]);
    const piece = match[2] ?? "";
    if (this.#total === 0) {
      this.#total = remaining + 1;
    } else if (remaining !== this.#total - this.#pieces.length - 1) {
      this.#reset();
      return { kind: "error", error: ChunkError.wrong_order };
    }
    this.#pieces.push(piece);
    this.#length += piece.length;
    if (this.#length > this.#maxChars) {
      this.#reset();
      return { kind: "error", error: ChunkError.too_large };
    }
    if (this.#pieces.length < this.#total) return { kind: "pending" };
    const text = this.#pieces.join("");
    this.#reset();
    return parse(text, ChunkError.invalid_chunked_json);
  }

  #reset(): void {
    this.#pieces = [];
    this.#total = 0;
    this.#length = 0;
  }
}

function parse(text: string, onError: ChunkError): ChunkResult {
  try {
    return { kind: "message", data: JSON.parse(text), text };
  } catch {
    return { kind: "error", error: onError };
  }
}

/**
 * Read-only ids of anonymous rooms: a second, unguessable id per room that joins it read-only and
 * can never be turned back into the room's own (edit) id, as tldraw's read-only slugs do. A room
 * gets one on first request, stored in KV both ways; two isolates creating one at once agree,
 * because the first atomic write wins and the loser reads the winner's.
 *
 * @module
 */

/** 128 random bits, URL-safe: the same alphabet as room ids, so every route accepts it. */
function randomReadonlyId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_")
    .replace(/=+$/, "");
}

/** How many times a create races before giving up (each lost race ends with the winner's id). */
const ATTEMPTS = 5;

/** The read-only ids of rooms, in KV. */
export class ReadonlyIds {
  readonly #kv: Deno.Kv;
  readonly #prefix: readonly string[];

  constructor(kv: Deno.Kv, prefix: readonly string[] = ["readonly"]) {
    this.#kv = kv;
    this.#prefix = prefix;
  }

  #ofRoom(roomId: string): Deno.KvKey {
    return [...this.#prefix, "of_room", roomId];
  }

  #room(readonlyId: string): Deno.KvKey {
    return [...this.#prefix, "room", readonlyId];
  }

  /** The room's read-only id, created on first request (the same one on every isolate). */
  async forRoom(roomId: string): Promise<string> {
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const existing = await this.#kv.get<string>(this.#ofRoom(roomId));
      if (existing.value !== null) return existing.value;
      const readonlyId = randomReadonlyId();
      const result = await this.#kv.atomic()
        .check({ key: this.#ofRoom(roomId), versionstamp: null })
        .check({ key: this.#room(readonlyId), versionstamp: null })
        .set(this.#ofRoom(roomId), readonlyId)
        .set(this.#room(readonlyId), roomId)
        .commit();
      if (result.ok) return readonlyId;
      // Another isolate created it first (or, vanishingly rarely, the random id was taken).
    }
    throw new Error(`could not create a read-only id for room ${roomId}`);
  }

  /** The room a read-only id opens, or `null` when `id` is not a read-only id. */
  async roomOf(id: string): Promise<string | null> {
    return (await this.#kv.get<string>(this.#room(id))).value;
  }
}

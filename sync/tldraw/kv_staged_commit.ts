/**
 * Commits too big for one KV atomic operation. The mutations are first written as pieces under
 * `stage, stageId, i` (invisible to readers), then the meta is committed, checked like any commit,
 * pointing at them (`pending`): from that moment the change is durable. Then the mutations are
 * applied in batches and the pointer cleared. Any reader that finds a pointer finishes the job
 * first ({@link StagedCommits.rollForward}), so an isolate dying halfway loses nothing.
 *
 * @module
 */
import {
  CHUNK_CHARS,
  deletePieces,
  joinPieces,
  type KvContext,
  type Mutation,
  slicePieces,
  writePieces,
  Writes,
} from "./kv_writes.ts";

/** A staged commit the meta points at until it is fully applied. */
export type Pending = { stageId: string; pieces: number; clock: number };

/** A meta value that may point at a staged commit. */
export type MetaWithPending = { pending?: Pending };

/** Staging, applying and cleaning up commits too big for one atomic operation. */
export class StagedCommits {
  readonly #ctx: KvContext;

  constructor(ctx: KvContext) {
    this.#ctx = ctx;
  }

  #pieceKey(roomId: string, stageId: string): (index: number) => Deno.KvKey {
    return (i) => this.#ctx.key(roomId, "stage", stageId, i);
  }

  /** Writes `writes` as staging pieces for the commit of `clock`; the meta then points at them. */
  async stage(roomId: string, writes: Writes, clock: number): Promise<Pending> {
    const stageId = crypto.randomUUID();
    const json = JSON.stringify(writes.list);
    const pieces = await writePieces(
      this.#ctx.kv,
      this.#pieceKey(roomId, stageId),
      slicePieces(json, CHUNK_CHARS),
    );
    return { stageId, pieces, clock };
  }

  /**
   * Applies the staged commit `entry` (a meta entry) points at, and clears the pointer. Safe to run
   * from several isolates at once: every batch checks that the meta still points at this stage, so
   * once one runner finished (and a later commit may have changed records) no stale batch can land.
   * Returns the meta entry as written when this runner cleared the pointer.
   */
  async rollForward<M extends MetaWithPending>(
    roomId: string,
    entry: Deno.KvEntryMaybe<M>,
  ): Promise<{ meta: M; versionstamp: string } | undefined> {
    const pending = entry.value?.pending;
    if (!pending || !entry.versionstamp) return undefined;
    const kv = this.#ctx.kv;
    const check = { key: entry.key, versionstamp: entry.versionstamp };
    const pieces: string[] = [];
    const prefix = this.#ctx.key(roomId, "stage", pending.stageId);
    for await (const piece of this.#ctx.reader().list<string>({ prefix })) {
      pieces[piece.key.at(-1) as number] = piece.value;
    }
    const json = joinPieces(pieces, pending.pieces);
    if (json === undefined) return undefined; // another runner finished and deleted the stage
    const writes = Writes.from(JSON.parse(json) as Mutation[]);
    for (const batch of writes.batches()) {
      const op = kv.atomic().check(check);
      batch.applyTo(op);
      if (!(await op.commit()).ok) return undefined;
    }
    const meta = { ...entry.value! };
    delete meta.pending;
    const done = await kv.atomic().check(check).set(entry.key, meta).commit();
    if (!done.ok) return undefined;
    await this.discard(roomId, pending);
    return { meta, versionstamp: done.versionstamp };
  }

  /** Deletes a stage's pieces (applied, or its commit lost the race). */
  discard(roomId: string, pending: Pending): Promise<void> {
    return deletePieces(this.#ctx.kv, this.#pieceKey(roomId, pending.stageId), pending.pieces);
  }
}

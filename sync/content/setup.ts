/**
 * Builds the content services of one isolate (history, snapshots, publishing, assets, hard deletes,
 * unfurling) from the app's configuration, and stops them when the server drains.
 *
 * @module
 */
import { ImageVariants } from "../assets/image_variants.ts";
import type { Config } from "../../config.ts";
import type { Database } from "../../db/database.ts";
import type { Logger } from "../../log.ts";
import { type MetricsRegistry, rateLimitCounter } from "../../metrics.ts";
import type { BlobStore } from "../assets/blob_store.ts";
import { FsBlobStore } from "../assets/fs_blob_store.ts";
import { S3BlobStore } from "../assets/s3_blob_store.ts";
import { KvRoomStore } from "../tldraw/kv_room_store.ts";
import { withLockedRetry } from "../tldraw/locked_retry.ts";
import type { RoomStore } from "../tldraw/room_store.ts";
import { Unfurler, type UnfurlOptions } from "../unfurl/unfurl.ts";
import { KvRateLimiter, type RateLimit } from "../user/rate_limit.ts";
import { DeletionWorker } from "./deletion.ts";
import { GzipWorker } from "./gzip.ts";
import {
  DEFAULT_RETENTION,
  HistoryRecorder,
  HistoryStore,
  type RetentionPolicy,
} from "./history.ts";
import { Publisher, SnapshotStore } from "./snapshots.ts";

/** Test seams and tunables that are not configuration. */
export interface ContentOptions {
  /** Overrides `HISTORY_INTERVAL_MS`. */
  historyIntervalMs?: number;
  retention?: RetentionPolicy;
  /** Wraps the room store the content services read and delete with (fault injection in tests). */
  wrapStore?: (store: RoomStore) => RoomStore;
  /** Replaces the configured blob store. */
  blobs?: BlobStore;
  /** Hard-delete queue poll interval (default 10 s). */
  deletionPollMs?: number;
  /** Per-caller request budgets (defaults: {@link DEFAULT_CONTENT_RATES}). */
  rates?: Partial<ContentRates>;
  /** Unfurler seams (address policy, resolver, fetch) — tests only. */
  unfurl?: Pick<UnfurlOptions, "policy" | "resolve" | "fetch" | "maxBytes" | "timeoutMs">;
}

/** Request budgets of the public content routes, per user (or per client address when anonymous). */
export interface ContentRates {
  unfurl: RateLimit;
  snapshot: RateLimit;
  upload: RateLimit;
}

/** Generous for people, tight enough to stop an unfurl proxy or a snapshot flood. */
export const DEFAULT_CONTENT_RATES: ContentRates = {
  unfurl: { limit: 60, windowMs: 60_000 },
  snapshot: { limit: 30, windowMs: 60_000 },
  upload: { limit: 300, windowMs: 60_000 },
};

/** What {@link createContent} needs. */
export interface ContentDeps {
  config: Config;
  kv: Deno.Kv;
  database: Database;
  log: Logger;
  /** Where rate-limit hits are counted. */
  metrics?: MetricsRegistry;
}

/** The content services of one isolate. */
export interface Content {
  /** The room store the services read documents from (the same KV data the rooms use). */
  store: RoomStore;
  history: HistoryStore;
  recorder: HistoryRecorder;
  snapshots: SnapshotStore;
  publisher: Publisher;
  blobs: BlobStore;
  deletion: DeletionWorker;
  unfurler: Unfurler;
  /** Resized copies of uploaded images (`GET /app/uploads/…?w=`). */
  imageVariants: ImageVariants;
  /** Rate limiters of the content routes. */
  limits: Record<keyof ContentRates, KvRateLimiter>;
  /** Stops the deletion worker and writes pending history versions (register after the rooms). */
  stop(): Promise<void>;
}

/** Opens the configured blob store. */
export function openBlobStore(config: Config): BlobStore {
  const blob = config.content.blobStore;
  if (blob.kind === "s3") return new S3BlobStore(blob);
  return new FsBlobStore(blob.dir);
}

/** Builds the services; the deletion worker starts now. Call `stop` when the server drains. */
export function createContent(deps: ContentDeps, options: ContentOptions = {}): Content {
  const log = deps.log.child({ component: "content" });
  const kvStore = withLockedRetry(new KvRoomStore(deps.kv));
  const store = options.wrapStore ? options.wrapStore(kvStore) : kvStore;
  // Versions of big rooms are compressed off the thread that serves their sessions.
  const gzipWorker = new GzipWorker();
  const history = new HistoryStore(deps.database, (parts) => gzipWorker.gzipText(parts));
  const recorder = new HistoryRecorder({
    history,
    store,
    log,
    intervalMs: options.historyIntervalMs ?? deps.config.content.historyIntervalMs,
    retention: options.retention ?? DEFAULT_RETENTION,
  });
  const blobs = options.blobs ?? openBlobStore(deps.config);
  const deletion = new DeletionWorker({
    database: deps.database,
    store,
    history,
    blobs,
    log,
    recoveryMs: deps.config.content.fileRecoveryMs,
    ...(options.deletionPollMs !== undefined ? { pollMs: options.deletionPollMs } : {}),
  });
  const unfurler = new Unfurler({
    kv: deps.kv,
    log,
    timeoutMs: deps.config.content.unfurlTimeoutMs,
    ...options.unfurl,
  });
  deletion.start();
  const rates = { ...DEFAULT_CONTENT_RATES, ...options.rates };
  const onLimited = rateLimitCounter(deps.metrics);
  return {
    store,
    history,
    recorder,
    snapshots: new SnapshotStore(deps.database),
    publisher: new Publisher(deps.database, store),
    blobs,
    deletion,
    unfurler,
    imageVariants: new ImageVariants(),
    limits: {
      unfurl: new KvRateLimiter(deps.kv, "unfurl", rates.unfurl, onLimited),
      snapshot: new KvRateLimiter(deps.kv, "snapshot", rates.snapshot, onLimited),
      upload: new KvRateLimiter(deps.kv, "upload", rates.upload, onLimited),
    },
    async stop() {
      await deletion.stop();
      await recorder.flush();
      gzipWorker.close();
    },
  };
}

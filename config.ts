/**
 * The server's configuration: one zod schema over the environment.
 *
 * Every variable has a local default so `deno task dev` needs nothing. A wrong value stops start-up with
 * a {@link ConfigError} naming each offending variable. Secrets are never part of error messages.
 *
 * @module
 */
import { z } from "zod";

const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
/** Log levels, lowest first. */
export type LogLevel = (typeof LOG_LEVELS)[number];

const LOG_FORMATS = ["json", "pretty"] as const;
/** `json`: one JSON object per line (production); `pretty`: lines for people (`deno task dev`). */
export type LogFormat = (typeof LOG_FORMATS)[number];

const booleanFromEnv = z
  .enum(["true", "false", "1", "0", "yes", "no", "on", "off"], {
    error: "expected true or false",
  })
  .transform((value) => ["true", "1", "yes", "on"].includes(value));

const intFromEnv = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, { error: "expected a whole number" })
    .transform(Number)
    .pipe(
      z.number().int().min(min, { error: `expected at least ${min}` }).max(max, {
        error: `expected at most ${max}`,
      }),
    );

const postgresUrl = z
  .string()
  .refine((value) => {
    try {
      const url = new URL(value);
      return (url.protocol === "postgres:" || url.protocol === "postgresql:") &&
        url.hostname !== "";
    } catch {
      return false;
    }
  }, { error: "expected a URL like postgres://user:password@host:5432/database" });

const commaList = z
  .string()
  .transform((value) => value.split(",").map((item) => item.trim()).filter((item) => item !== ""));

const urlString = z.url({ error: "expected an absolute URL" });

const BUS_KINDS = ["auto", "broadcast", "postgres", "both", "none"] as const;
/**
 * How isolates tell each other about new commits: `broadcast` (BroadcastChannel: Workers of one
 * process, Deno Deploy), `postgres` (LISTEN/NOTIFY: separate processes sharing a database), `both`,
 * `none` (single isolate), or `auto` (both with a Postgres server, BroadcastChannel otherwise).
 */
export type BusKind = (typeof BUS_KINDS)[number];

/** The raw environment variables this server reads, with their parsers and defaults. */
const envSchema = z.object({
  PORT: intFromEnv(0, 65535).default(8000),
  HOST: z.string().min(1).default("127.0.0.1"),
  DATA_DIR: z.string().min(1).default(".data"),
  KV_PATH: z.string().min(1).optional(),
  DATABASE_URL: postgresUrl.optional(),
  DATABASE_POOL_SIZE: intFromEnv(1, 200).default(10),
  PGLITE_DIR: z.string().min(1).optional(),
  MIGRATE_ON_START: booleanFromEnv.default(true),
  LOG_LEVEL: z.enum(LOG_LEVELS, { error: `expected one of ${LOG_LEVELS.join(", ")}` }).default(
    "info",
  ),
  LOG_FORMAT: z.enum(LOG_FORMATS, { error: `expected one of ${LOG_FORMATS.join(", ")}` })
    .optional(),
  CORS_ORIGINS: commaList.default(["*"]),
  SHUTDOWN_GRACE_MS: intFromEnv(0, 60_000).default(4_000),
  AUTH_JWKS_URL: urlString.optional(),
  AUTH_ISSUER: z.string().min(1).optional(),
  AUTH_AUDIENCE: z.string().min(1).optional(),
  AUTH_DEV_IDP: booleanFromEnv.optional(),
  AUTH_SIGN_IN_URL: urlString.optional(),
  ADMIN_TOKEN: z.string().min(16, { error: "expected at least 16 characters" }).optional(),
  ADMIN_USER_IDS: commaList.default([]),
  METRICS_TOKEN: z.string().min(16, { error: "expected at least 16 characters" }).optional(),
  DEBUG_TAIL: booleanFromEnv.optional(),
  MAX_SESSIONS_PER_ROOM: intFromEnv(1, 10_000).default(50),
  MAX_ROOM_BYTES: intFromEnv(1024, 1024 ** 3).default(25 * 1024 * 1024),
  MAX_MESSAGE_BYTES: intFromEnv(1024, 64 * 1024 * 1024).default(4 * 1024 * 1024),
  MAX_FILES_PER_USER: intFromEnv(1, 100_000).default(200),
  ISOLATES: intFromEnv(1, 64).default(1),
  BUS: z.enum(BUS_KINDS, { error: `expected one of ${BUS_KINDS.join(", ")}` }).default("auto"),
  ROOM_SESSION_TTL_MS: intFromEnv(1_000, 600_000).default(10_000),
  ROOM_POLL_MS: intFromEnv(0, 60_000).default(1_000),
  ISOLATE_REPORT_MS: intFromEnv(100, 600_000).default(5_000),
  KV_COMMITS_IN_FLIGHT: intFromEnv(1, 64).optional(),
  KV_COMMIT_LINGER_MS: intFromEnv(0, 50).optional(),
  KV_REMOTE: booleanFromEnv.optional(),
  LIVESTORE_PATH_PREFIX: z.string().regex(/^\/[A-Za-z0-9_\/-]*[A-Za-z0-9_-]$/, {
    error: "expected a path like /livestore",
  }).default("/livestore"),
  LIVESTORE_AUTH_TOKEN: z.string().min(16, { error: "expected at least 16 characters" }).optional(),
  LIVESTORE_PUSHES_PER_MINUTE: intFromEnv(0, 1_000_000).default(100),
  LIVESTORE_ANONYMOUS: booleanFromEnv.optional(),
  BLOB_STORE: z.enum(["fs", "s3"], { error: "expected fs or s3" }).default("fs"),
  BLOB_DIR: z.string().min(1).optional(),
  S3_ENDPOINT: urlString.optional(),
  S3_BUCKET: z.string().min(1).optional(),
  S3_REGION: z.string().min(1).default("us-east-1"),
  S3_ACCESS_KEY_ID: z.string().min(1).optional(),
  S3_SECRET_ACCESS_KEY: z.string().min(1).optional(),
  MAX_UPLOAD_BYTES: intFromEnv(1, 1024 ** 3).default(25 * 1024 * 1024),
  HISTORY_INTERVAL_MS: intFromEnv(1_000, 3_600_000).default(8_000),
  UNFURL_TIMEOUT_MS: intFromEnv(100, 60_000).default(5_000),
  FILE_RECOVERY_DAYS: intFromEnv(0, 3650).default(30),
  ZERO_CACHE_URL: urlString.optional(),
  WEB_DIR: z.string().min(1).optional(),
  DENO_DEPLOYMENT_ID: z.string().optional(),
});

/** Where the process runs: on Deno Deploy, KV and paths behave differently. */
export type Platform = "deploy" | "local";

/** The validated configuration object handed to every part of the server. */
export interface Config {
  /** `deploy` when running on Deno Deploy (`DENO_DEPLOYMENT_ID` is set). */
  platform: Platform;
  /** `true` under `deno task dev` (enables development conveniences such as the dev identity provider). */
  dev: boolean;
  http: { port: number; host: string; corsOrigins: string[]; shutdownGraceMs: number };
  /** Local data directory (KV file, PGlite data, blobs). */
  dataDir: string;
  /** KV path: a file path, `:memory:`, or `undefined` for the platform default (Deno Deploy). */
  kvPath: string | undefined;
  database:
    | { kind: "postgres"; url: string; poolSize: number }
    | { kind: "pglite"; dataDir: string };
  migrateOnStart: boolean;
  logLevel: LogLevel;
  /** Lines for people under `deno task dev`, JSON otherwise (`LOG_FORMAT`). */
  logFormat: LogFormat;
  /** When set, `GET /metrics` requires it as a bearer token. */
  metricsToken: string | undefined;
  /**
   * Serve the live log tail `GET /admin/debug/tail` (WebSocket, admins only). A development aid:
   * on under `deno task dev`, off otherwise unless `DEBUG_TAIL=true`.
   */
  debugTail: boolean;
  /** Local Web Worker isolates to run (`deno task dev --isolates N`); 1 = serve in the main thread. */
  isolates: number;
  /** The cross-isolate bus (resolved: never `auto`). */
  bus: Exclude<BusKind, "auto">;
  auth: {
    jwksUrl: string | undefined;
    issuer: string | undefined;
    audience: string | undefined;
    devIdentityProvider: boolean;
    /**
     * Where the web app sends people to sign in with the real identity provider (e.g. Clerk's
     * account portal), which leaves a JWT in the `__session` cookie of this site.
     */
    signInUrl: string | undefined;
    adminToken: string | undefined;
    adminUserIds: string[];
  };
  limits: {
    maxSessionsPerRoom: number;
    maxRoomBytes: number;
    maxMessageBytes: number;
    maxFilesPerUser: number;
  };
  livestore: LivestoreConfig;
  /** History, snapshots, publishing, assets and unfurling (issue 6). */
  content: ContentConfig;
  /**
   * Where Zero clients reach zero-cache (`ZERO_CACHE_URL`); the web app syncs files through Zero
   * when it is set, through the user-data channel otherwise.
   */
  zeroCacheUrl: string | undefined;
  /** The built web app served at `/` (`WEB_DIR`; default: web/dist of this checkout). */
  webDir: string | undefined;
  /** tldraw rooms across isolates. */
  rooms: {
    /**
     * Lifetime of a session entry in KV (refreshed every third of it). Presence of a crashed
     * isolate's sessions disappears, and their slots count against ROOM_FULL, for at most about
     * this long plus two seconds.
     */
    sessionTtlMs: number;
    /** How often a room with sessions checks KV for commits whose bus notice was lost (0: never). */
    pollMs: number;
    /**
     * KV is a network away (`KV_REMOTE`; default: on Deno Deploy): more operations in flight, and
     * committed patches go out without waiting for the next commit.
     */
    kvRemote: boolean;
    /**
     * KV atomic operations one isolate keeps in flight (merged commits of its rooms, session
     * entries): 2 for a local KV file (one writer at a time), 16 for a remote KV (more rooms
     * commit per round trip).
     */
    kvCommitsInFlight: number;
    /**
     * Milliseconds a commit may wait for other rooms' commits to share its KV operation, while
     * they arrive more often than that: 2 for a local KV file (each operation is one SQLite
     * transaction, costing about what one commit does), 0 for a remote KV.
     */
    kvCommitLingerMs: number;
    /** How often an isolate writes its report for the operator page to KV (sync/isolate_reports.ts). */
    reportMs: number;
  };
}

/** Where asset bytes go: a local directory, or an S3-compatible bucket. */
export type BlobStoreConfig =
  | { kind: "fs"; dir: string }
  | {
    kind: "s3";
    endpoint: string;
    bucket: string;
    region: string;
    accessKeyId: string;
    secretAccessKey: string;
  };

/** History, snapshots, publishing, assets and unfurling. */
export interface ContentConfig {
  blobStore: BlobStoreConfig;
  /** Largest accepted upload (bytes). */
  maxUploadBytes: number;
  /** At most one history version per room per this many ms while it changes. */
  historyIntervalMs: number;
  /** Deadline of one unfurl, redirects included. */
  unfurlTimeoutMs: number;
  /**
   * How long a deleted file can be restored by its owner before the background hard delete
   * removes it and everything it left (ms; `FILE_RECOVERY_DAYS`, 0 = at once).
   */
  fileRecoveryMs: number;
}

/** LiveStore sync (see routes/livestore.ts). */
export interface LivestoreConfig {
  /** Path prefix of the LiveStore endpoints (the client routes by query parameters under it). */
  prefix: string;
  /**
   * When set, clients without a JWT must send it as `authToken` in their sync payload, and may then
   * sync stores outside the `user:` and `file:` namespaces.
   */
  authToken: string | undefined;
  /**
   * Clients without a JWT or token may sync stores outside the `user:` and `file:` namespaces
   * (`LIVESTORE_ANONYMOUS`; on under `deno task dev`, off otherwise).
   */
  anonymous: boolean;
  /** Pushes one client may make to one store per minute, across isolates (0: no limit). */
  pushesPerMinute: number;
}

/**
 * The exit code of a start-up problem a person must fix (a bad variable, a port in use, a database
 * that cannot be reached): `deno task dev` stops on it instead of waiting for a file change.
 */
export const EXIT_STARTUP_PROBLEM = 78;

/** Thrown when the environment holds an invalid value; `message` names every offending variable. */
export class ConfigError extends Error {
  /** The offending variables with what was expected of each. */
  readonly issues: readonly { variable: string; problem: string }[];
  constructor(issues: readonly { variable: string; problem: string }[]) {
    super(
      "Invalid configuration:\n" +
        issues.map(({ variable, problem }) => `  ${variable}: ${problem}`).join("\n"),
    );
    this.name = "ConfigError";
    this.issues = issues;
  }
}

/** Options that do not come from the environment. */
export interface LoadConfigOptions {
  /** Development mode (`deno task dev`). */
  dev?: boolean;
  /** Overrides `ISOLATES` (from `--isolates N`). */
  isolates?: number;
}

/**
 * Builds the configuration from an environment map (usually `Deno.env.toObject()`).
 * Empty strings count as unset, so `FOO=` falls back to the default.
 */
export function loadConfig(
  env: Record<string, string | undefined>,
  options: LoadConfigOptions = {},
): Config {
  const present = Object.fromEntries(
    Object.entries(env).filter(([, value]) => value !== undefined && value !== ""),
  );
  const parsed = envSchema.safeParse(present);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((issue) => ({
      variable: String(issue.path[0] ?? "(environment)"),
      problem: issue.message,
    })));
  }
  const e = parsed.data;
  const platform: Platform = e.DENO_DEPLOYMENT_ID ? "deploy" : "local";
  const dev = options.dev ?? false;
  if (platform === "deploy" && !e.DATABASE_URL) {
    throw new ConfigError([{
      variable: "DATABASE_URL",
      problem: "required on Deno Deploy (embedded PGlite needs a writable local disk)",
    }]);
  }
  if (e.BLOB_STORE === "s3") {
    const required = [
      "S3_ENDPOINT",
      "S3_BUCKET",
      "S3_ACCESS_KEY_ID",
      "S3_SECRET_ACCESS_KEY",
    ] as const;
    const missing = required.filter((name) => !e[name]);
    if (missing.length > 0) {
      throw new ConfigError(missing.map((variable) => ({
        variable,
        problem: "required when BLOB_STORE=s3",
      })));
    }
  }
  // Deno Deploy's KV is a network away; so is any KV the operator says is (KV_REMOTE).
  const kvRemote = e.KV_REMOTE ?? platform === "deploy";
  return {
    platform,
    dev,
    http: {
      port: e.PORT,
      host: e.HOST,
      corsOrigins: e.CORS_ORIGINS,
      shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
    },
    dataDir: e.DATA_DIR,
    kvPath: platform === "deploy" ? undefined : (e.KV_PATH ?? `${e.DATA_DIR}/kv.sqlite3`),
    database: e.DATABASE_URL
      ? { kind: "postgres", url: e.DATABASE_URL, poolSize: e.DATABASE_POOL_SIZE }
      : { kind: "pglite", dataDir: e.PGLITE_DIR ?? `${e.DATA_DIR}/pg` },
    migrateOnStart: e.MIGRATE_ON_START,
    logLevel: e.LOG_LEVEL,
    logFormat: e.LOG_FORMAT ?? (dev ? "pretty" : "json"),
    metricsToken: e.METRICS_TOKEN,
    debugTail: e.DEBUG_TAIL ?? dev,
    isolates: options.isolates ?? e.ISOLATES,
    bus: e.BUS === "auto" ? (e.DATABASE_URL ? "both" : "broadcast") : e.BUS,
    auth: {
      jwksUrl: e.AUTH_JWKS_URL,
      issuer: e.AUTH_ISSUER,
      audience: e.AUTH_AUDIENCE,
      devIdentityProvider: e.AUTH_DEV_IDP ?? dev,
      signInUrl: e.AUTH_SIGN_IN_URL,
      adminToken: e.ADMIN_TOKEN,
      adminUserIds: e.ADMIN_USER_IDS,
    },
    limits: {
      maxSessionsPerRoom: e.MAX_SESSIONS_PER_ROOM,
      maxRoomBytes: e.MAX_ROOM_BYTES,
      maxMessageBytes: e.MAX_MESSAGE_BYTES,
      maxFilesPerUser: e.MAX_FILES_PER_USER,
    },
    livestore: {
      prefix: e.LIVESTORE_PATH_PREFIX,
      authToken: e.LIVESTORE_AUTH_TOKEN,
      anonymous: e.LIVESTORE_ANONYMOUS ?? dev,
      pushesPerMinute: e.LIVESTORE_PUSHES_PER_MINUTE,
    },
    rooms: {
      sessionTtlMs: e.ROOM_SESSION_TTL_MS,
      pollMs: e.ROOM_POLL_MS,
      kvRemote,
      kvCommitsInFlight: e.KV_COMMITS_IN_FLIGHT ?? (kvRemote ? 16 : 2),
      kvCommitLingerMs: e.KV_COMMIT_LINGER_MS ?? 2,
      reportMs: e.ISOLATE_REPORT_MS,
    },
    zeroCacheUrl: e.ZERO_CACHE_URL,
    webDir: e.WEB_DIR,
    content: {
      blobStore: e.BLOB_STORE === "s3"
        ? {
          kind: "s3",
          endpoint: e.S3_ENDPOINT!,
          bucket: e.S3_BUCKET!,
          region: e.S3_REGION,
          accessKeyId: e.S3_ACCESS_KEY_ID!,
          secretAccessKey: e.S3_SECRET_ACCESS_KEY!,
        }
        : { kind: "fs", dir: e.BLOB_DIR ?? `${e.DATA_DIR}/blobs` },
      maxUploadBytes: e.MAX_UPLOAD_BYTES,
      historyIntervalMs: e.HISTORY_INTERVAL_MS,
      unfurlTimeoutMs: e.UNFURL_TIMEOUT_MS,
      fileRecoveryMs: e.FILE_RECOVERY_DAYS * 24 * 60 * 60 * 1000,
    },
  };
}

/** A configuration for tests: in-memory KV and the given database, quiet logs, no start-up migrations. */
export function testConfig(overrides: Partial<Config> = {}): Config {
  const base = loadConfig({ KV_PATH: ":memory:", LOG_LEVEL: "error", MIGRATE_ON_START: "false" });
  return { ...base, ...overrides };
}

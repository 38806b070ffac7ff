/**
 * The app's user-data surface: the user-sync socket `GET /app/:userId/connect`, `GET /app/files`,
 * `GET /app/file/:fileId/meta`, and the dev identity provider's routes when enabled. Thin: authenticate,
 * gate, hand over to sync/user/.
 *
 * @module
 */
import { Hono } from "hono";
import type { ChangeFeed } from "../sync/user/change_feed.ts";
import { type FileAccess, fileAccess, userFiles } from "../sync/user/data.ts";
import type { Identity } from "../sync/user/identity.ts";
import {
  APP_CLOSE_CODE,
  type CloseReason,
  USER_SYNC_PROTOCOL_VERSION,
} from "../sync/user/protocol.ts";
import { type UserSyncOptions, UserSyncService } from "../sync/user/service.ts";
import { type Authenticator, type AuthOptions, createAuthenticator } from "./auth/authenticator.ts";
import { devIdentityRoutes } from "./auth/routes.ts";
import { mutationRejectCounter, rateLimitCounter } from "../metrics.ts";
import type { AppDeps } from "./deps.ts";
import { meterSocket } from "./socket_metrics.ts";
import { HttpError } from "./errors.ts";

/** Tunables and test hooks of the user-data surface (not in the configuration). */
export interface UserDataOptions {
  service?: UserSyncOptions;
  auth?: AuthOptions;
}

/** The user-data surface, and what the room side needs from it. */
export interface UserData {
  routes: Hono;
  /** Authenticates requests (the room route uses it too). */
  auth: Authenticator;
  service: UserSyncService;
  /** File-row changes from everywhere: `feed.onFileChanged(listener)`. */
  feed: ChangeFeed;
  /** The admission decision for a file's room. */
  fileAccess(fileId: string, identity: Identity | undefined): Promise<FileAccess>;
}

/** Builds the user-data surface; its change feed stops when the lifecycle drains. */
export function createUserData(deps: AppDeps, options: UserDataOptions = {}): UserData {
  const { config, database, kv, log, lifecycle } = deps;
  const auth = createAuthenticator(config, kv, log, options.auth);
  const service = new UserSyncService({
    database,
    kv,
    log,
    maxFilesPerUser: config.limits.maxFilesPerUser,
    maxMessageBytes: config.limits.maxMessageBytes,
    recoveryWindowMs: config.content.fileRecoveryMs,
    ...(options.service ? { options: options.service } : {}),
    onRateLimited: rateLimitCounter(deps.metrics),
    onMutationRejected: mutationRejectCounter(deps.metrics),
  });
  lifecycle.onDrain(() => service.stop());

  const app = new Hono();
  if (auth.devIdentity) app.route("/", devIdentityRoutes(auth.devIdentity));

  app.get("/app/files", async (c) => {
    const identity = await auth.required(c);
    const files = await userFiles(database.db, identity.userId);
    c.header("Cache-Control", "no-store");
    return c.json({ files: files.filter((file) => !file.isDeleted) });
  });

  app.get("/app/file/:fileId/meta", async (c) => {
    const identity = await auth.optional(c);
    const access = await fileAccess(database, c.req.param("fileId"), identity);
    if (access.kind === "not_found") throw new HttpError("not_found", "No such file");
    if (access.kind === "not_authenticated") {
      throw new HttpError("unauthorized", "Authentication required");
    }
    if (access.kind === "forbidden") throw new HttpError("forbidden", "This file is private");
    const { file } = access;
    c.header("Cache-Control", "no-store");
    return c.json({
      id: file.id,
      name: file.name,
      ownerId: file.ownerId,
      shared: file.shared,
      sharedLinkType: file.sharedLinkType,
      published: file.published,
      publishedSlug: file.publishedSlug,
      createdAt: file.createdAt,
      updatedAt: file.updatedAt,
      isOwner: access.isOwner,
      readonly: access.readonly,
    });
  });

  app.get("/app/:userId/connect", async (c) => {
    if (c.req.header("Upgrade")?.toLowerCase() !== "websocket") {
      throw new HttpError("bad_request", "Expected a WebSocket upgrade");
    }
    const sessionId = c.req.query("sessionId");
    if (!sessionId) throw new HttpError("bad_request", "sessionId is required");
    const rawVersion = c.req.query("protocolVersion");
    // Clients from before the version parameter existed speak version 1.
    const version = rawVersion === undefined || rawVersion === "" ? 1 : Number(rawVersion);
    const result = await auth.check(c);
    const { socket, response } = Deno.upgradeWebSocket(c.req.raw);
    meterSocket(socket, "user", deps.metrics);
    lifecycle.trackSocket(socket);
    // Refusals are sent on the socket: browsers cannot read an HTTP error from a failed upgrade.
    const refuse = (reason: CloseReason) => {
      socket.addEventListener("open", () => socket.close(APP_CLOSE_CODE, reason));
      return response;
    };
    if (!result.ok || result.identity.userId !== c.req.param("userId")) {
      return refuse("NOT_AUTHENTICATED");
    }
    if (version !== USER_SYNC_PROTOCOL_VERSION) return refuse("CLIENT_TOO_OLD");
    if (await service.isConnectLimited(result.identity.userId)) return refuse("RATE_LIMITED");
    service.accept(socket, result.identity, sessionId);
    return response;
  });

  return {
    routes: app,
    auth,
    service,
    feed: service.feed,
    fileAccess: (fileId, identity) => fileAccess(database, fileId, identity),
  };
}

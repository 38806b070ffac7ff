/**
 * Assets: `POST /uploads/:objectName?roomId=…` stores an upload to an anonymous room (anyone with its
 * edit link; not with a read-only id). `POST /app/uploads/:objectName?fileId=…` stores an upload (authenticated; the caller must be
 * able to edit the file; size limit; content-type allow-list; object names are one safe path segment,
 * so traversal is impossible by construction) and links it to the file and the user in `asset`.
 * `GET /app/uploads/:objectName` serves it with its content type, a strong ETag (304 on a match),
 * single byte ranges (206/416) and long-lived caching: an object name is never reused for other bytes.
 * Reads need no token, like the original (editors load assets with plain `<img>` tags; object names
 * are unguessable).
 *
 * @module
 */
import { type Context, Hono } from "hono";
import { type BlobInfo, type ByteRange, isValidObjectName } from "../sync/assets/blob_store.ts";
import { ImageVariants } from "../sync/assets/image_variants.ts";
import type { Content } from "../sync/content/setup.ts";
import type { AppDeps } from "./deps.ts";
import { HttpError } from "./errors.ts";
import { readBodyCapped } from "./body.ts";
import { FILE_ID_PATTERN } from "./file_param.ts";
import { ROOM_ID_PATTERN } from "./rooms.ts";
import type { UserData } from "./user_sync.ts";

/** Content types accepted for uploads (what the editor embeds: images and videos). */
export const ALLOWED_UPLOAD_TYPES: readonly string[] = [
  "image/png",
  "image/jpeg",
  "image/gif",
  "image/webp",
  "image/avif",
  "image/apng",
  "image/svg+xml",
  "video/mp4",
  "video/webm",
  "video/quicktime",
];

/** How the room upload route tells an anonymous room's id from a read-only one, and finds rooms. */
export interface RoomUploadDeps {
  /** The room a read-only id opens, or `null` for any other id. */
  readonlyRoomOf(id: string): Promise<string | null>;
  /** Whether the anonymous room exists (someone has opened it). */
  roomExists(roomId: string): Promise<boolean>;
}

/**
 * Asset routes: uploads to files (`/app/uploads/…?fileId=`, signed in, edit access) and to
 * anonymous rooms (`/uploads/…?roomId=`: whoever has the room's edit link may add to it, as they
 * may draw in it; same size, type and rate limits, counted per room), both served from
 * `GET /app/uploads/:objectName`.
 */
export function uploadRoutes(
  deps: AppDeps,
  userData: UserData,
  content: Content,
  rooms: RoomUploadDeps,
): Hono {
  const { database, config } = deps;
  const maxBytes = config.content.maxUploadBytes;
  const app = new Hono();

  /** The checks every upload passes before its bytes are read. */
  const acceptUpload = (c: Context) => {
    const objectName = c.req.param("objectName") ?? "";
    if (!isValidObjectName(objectName)) {
      throw new HttpError("bad_request", "invalid object name", { reason: "invalid_name" });
    }
    const contentType = (c.req.header("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
    if (!ALLOWED_UPLOAD_TYPES.includes(contentType)) {
      throw new HttpError("unsupported_media_type", `content type not allowed: ${contentType}`, {
        allowed: ALLOWED_UPLOAD_TYPES,
      });
    }
    return { objectName, contentType };
  };

  /** Reads the body (capped) and stores it under a name neither table has; `link` records it. */
  const storeUpload = async (
    c: Context,
    { objectName, contentType }: { objectName: string; contentType: string },
    link: () => Promise<unknown>,
  ) => {
    const bytes = await readBodyCapped(c.req.raw, maxBytes).catch((error) => {
      if (error instanceof HttpError && error.code === "payload_too_large") {
        throw new HttpError("payload_too_large", `uploads are limited to ${maxBytes} bytes`, {
          limit: maxBytes,
        });
      }
      throw error;
    });
    if (bytes.byteLength === 0) throw new HttpError("bad_request", "empty upload");
    // Object names are never reused: a cached copy anywhere stays correct forever.
    const [fileAsset, roomAsset] = await Promise.all([
      database.db.selectFrom("asset").select("objectName")
        .where("objectName", "=", objectName).executeTakeFirst(),
      database.db.selectFrom("room_asset").select("objectName")
        .where("objectName", "=", objectName).executeTakeFirst(),
    ]);
    if (fileAsset || roomAsset || await content.blobs.head(objectName)) {
      throw new HttpError("conflict", "an object with this name exists");
    }
    const info = await content.blobs.put(objectName, bytes, contentType);
    await link();
    return c.json({
      objectName,
      url: `/app/uploads/${objectName}`,
      size: info.size,
      contentType: info.contentType,
      etag: info.etag,
    }, 201);
  };

  app.post("/app/uploads/:objectName", async (c) => {
    const identity = await userData.auth.required(c);
    if (await content.limits.upload.isLimited(identity.userId)) {
      throw new HttpError("rate_limited", "too many uploads");
    }
    const accepted = acceptUpload(c);
    const fileId = c.req.query("fileId") ?? "";
    if (!FILE_ID_PATTERN.test(fileId)) throw new HttpError("bad_request", "fileId is required");
    const access = await userData.fileAccess(fileId, identity);
    if (access.kind === "not_found") throw new HttpError("not_found", "No such file");
    if (access.kind !== "ok" || access.readonly) {
      throw new HttpError("forbidden", "You cannot add assets to this file");
    }
    return await storeUpload(c, accepted, () =>
      database.db.insertInto("asset")
        .values({ objectName: accepted.objectName, fileId, userId: identity.userId }).execute());
  });

  app.post("/uploads/:objectName", async (c) => {
    const roomId = c.req.query("roomId") ?? "";
    if (!ROOM_ID_PATTERN.test(roomId)) throw new HttpError("bad_request", "roomId is required");
    if (await content.limits.upload.isLimited(`room:${roomId}`)) {
      throw new HttpError("rate_limited", "too many uploads to this room");
    }
    const accepted = acceptUpload(c);
    // A read-only link's id opens the room too, but may not add to it.
    if (await rooms.readonlyRoomOf(roomId) !== null) {
      throw new HttpError("forbidden", "A read-only link cannot add assets");
    }
    if (!await rooms.roomExists(roomId)) throw new HttpError("not_found", "No such room");
    return await storeUpload(
      c,
      accepted,
      () =>
        database.db.insertInto("room_asset").values({ objectName: accepted.objectName, roomId })
          .execute(),
    );
  });

  app.get("/app/uploads/:objectName", async (c) => {
    const objectName = c.req.param("objectName");
    if (!isValidObjectName(objectName)) throw new HttpError("not_found", "No such object");
    const info = await content.blobs.head(objectName);
    if (!info) throw new HttpError("not_found", "No such object");
    const variant = await imageVariant(c, objectName, info);
    if (variant) return variant;
    const headers: Record<string, string> = {
      "Content-Type": info.contentType,
      ETag: info.etag,
      "Cache-Control": "public, max-age=31536000, immutable",
      "Accept-Ranges": "bytes",
      "Last-Modified": new Date(info.uploadedAt).toUTCString(),
      // An uploaded SVG must not run script on our origin.
      "Content-Security-Policy":
        "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox",
      "X-Content-Type-Options": "nosniff",
    };
    if (matchesEtag(c.req.header("if-none-match"), info.etag)) {
      return new Response(null, { status: 304, headers });
    }
    const rangeHeader = c.req.header("range");
    // If-Range with another validator: the client's partial copy is stale, send it all.
    const ifRange = c.req.header("if-range");
    const range = rangeHeader && (!ifRange || ifRange === info.etag)
      ? parseRange(rangeHeader, info.size)
      : undefined;
    if (range === "unsatisfiable") {
      return new Response(null, {
        status: 416,
        headers: { ...headers, "Content-Range": `bytes */${info.size}` },
      });
    }
    const object = await content.blobs.get(objectName, range ?? undefined);
    if (!object) throw new HttpError("not_found", "No such object");
    if (range) {
      return new Response(object.body, {
        status: 206,
        headers: {
          ...headers,
          "Content-Range": `bytes ${range.start}-${range.end}/${info.size}`,
          "Content-Length": String(range.end - range.start + 1),
        },
      });
    }
    return new Response(object.body, {
      status: 200,
      headers: { ...headers, "Content-Length": String(info.size) },
    });
  });

  /**
   * `?w=<px>`: a PNG or JPEG wider than the next width step is served resized to it (its own ETag,
   * cached like the original); otherwise, or with a Range, `undefined` (the original is served).
   */
  const imageVariant = async (c: Context, objectName: string, info: BlobInfo) => {
    const requested = Number(c.req.query("w") ?? "");
    if (!Number.isInteger(requested) || requested <= 0 || c.req.header("range")) return undefined;
    const step = ImageVariants.stepFor(requested);
    if (step === null || !ImageVariants.resizes(info.contentType)) return undefined;
    const variant = await content.imageVariants.variant(
      objectName,
      info.contentType,
      step,
      async () => {
        const object = await content.blobs.get(objectName);
        if (!object) throw new HttpError("not_found", "No such object");
        return new Uint8Array(await new Response(object.body).arrayBuffer());
      },
    );
    if (!variant) return undefined;
    const etag = `${info.etag.slice(0, -1)}-w${step}"`;
    const headers = {
      "Content-Type": variant.contentType,
      ETag: etag,
      "Cache-Control": "public, max-age=31536000, immutable",
      "X-Content-Type-Options": "nosniff",
    };
    if (matchesEtag(c.req.header("if-none-match"), etag)) {
      return new Response(null, { status: 304, headers });
    }
    return new Response(variant.bytes as Uint8Array<ArrayBuffer>, {
      status: 200,
      headers: { ...headers, "Content-Length": String(variant.bytes.byteLength) },
    });
  };

  return app;
}

function matchesEtag(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  return header.trim() === "*" ||
    header.split(",").some((tag) => tag.trim().replace(/^W\//, "") === etag);
}

/**
 * One byte range from a `Range` header: `bytes=a-b`, `bytes=a-`, `bytes=-n`. Several ranges or another
 * unit → `undefined` (the whole object is sent, which RFC 9110 allows); a range outside the object →
 * `"unsatisfiable"`.
 */
export function parseRange(header: string, size: number): ByteRange | "unsatisfiable" | undefined {
  const match = header.trim().match(/^bytes=(\d*)-(\d*)$/);
  if (!match) return undefined;
  const [, first, last] = match;
  if (first === "" && last === "") return undefined;
  if (first === "") {
    const suffix = Number(last);
    if (suffix === 0 || size === 0) return "unsatisfiable";
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  if (start >= size) return "unsatisfiable";
  const end = last === "" ? size - 1 : Math.min(Number(last), size - 1);
  if (end < start) return undefined;
  return { start, end };
}

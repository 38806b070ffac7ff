/**
 * Images, videos and bookmarks through this server: dropped files are uploaded (a file's board to
 * `/app/uploads/…?fileId=`, an anonymous room's to `/uploads/…?roomId=`) and the document keeps only
 * their URL, so a cold join does not carry the bytes; images are fetched at the width they are drawn
 * at (`?w=`); pasted links are described by `/unfurl`.
 *
 * @module
 */
import {
  AssetRecordType,
  type Editor,
  getHashForString,
  type TLAssetStore,
  type TLBookmarkAsset,
} from "tldraw";

/** Where a board's uploads go (a read-only board uploads nothing). */
export type UploadTarget =
  | { kind: "file"; fileId: string; token: string }
  | { kind: "room"; roomId: string }
  | { kind: "none" };

/** The error a refused upload throws (the editor shows it as a toast). */
export class UploadError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = "UploadError";
  }
}

/** A `TLAssetStore` that stores uploads on this server and resolves them to its URLs. */
export function serverAssetStore(target: UploadTarget): TLAssetStore {
  return {
    async upload(_asset, file, abortSignal) {
      const objectName = `${crypto.randomUUID()}-${safeName(file.name)}`;
      const request = uploadRequest(target, objectName);
      const response = await fetch(request.url, {
        method: "POST",
        headers: { ...request.headers, "content-type": file.type },
        body: file,
        ...(abortSignal ? { signal: abortSignal } : {}),
      });
      if (!response.ok) {
        const body = await response.json().catch(() => undefined);
        throw new UploadError(response.status, body?.error?.message ?? response.statusText);
      }
      const stored = await response.json() as { url: string };
      return { src: new URL(stored.url, location.origin).href };
    },
    resolve: (asset, context) => {
      const src = asset.props.src;
      // Our PNG and JPEG uploads come resized for the width they are drawn at (`?w=`); the rest,
      // and exports (which leave the board), get the original.
      if (
        !src || asset.type !== "image" || context.shouldResolveToOriginal ||
        !RESIZED_TYPES.has(asset.props.mimeType ?? "") ||
        !src.startsWith(`${location.origin}/app/uploads/`)
      ) return src;
      const slowNetwork = context.networkEffectiveType !== null &&
        context.networkEffectiveType !== "4g";
      const width = Math.ceil(
        Math.min(
          asset.props.w * context.steppedScreenScale * context.dpr * (slowNetwork ? 0.5 : 1),
          asset.props.w,
        ),
      );
      return `${src}?w=${width}`;
    },
  };
}

/** What the server resizes (sync/assets/image_variants.ts). */
const RESIZED_TYPES: ReadonlySet<string> = new Set(["image/png", "image/jpeg"]);

function uploadRequest(
  target: UploadTarget,
  objectName: string,
): { url: string; headers: Record<string, string> } {
  const name = encodeURIComponent(objectName);
  switch (target.kind) {
    case "file":
      return {
        url: `/app/uploads/${name}?fileId=${encodeURIComponent(target.fileId)}`,
        headers: { authorization: `Bearer ${target.token}` },
      };
    case "room":
      return { url: `/uploads/${name}?roomId=${encodeURIComponent(target.roomId)}`, headers: {} };
    case "none":
      throw new UploadError(403, "This board is read-only");
  }
}

/** A file name as an object name's tail: the server accepts `[A-Za-z0-9._-]`, no `..`. */
function safeName(name: string): string {
  const cleaned = name.replace(/[^A-Za-z0-9._-]+/g, "_").replace(/\.{2,}/g, ".").slice(-80);
  return cleaned || "upload";
}

/** Bookmarks get their title, description, image and icon from the server's `/unfurl`. */
export function registerUnfurl(editor: Editor): void {
  editor.registerExternalAssetHandler("url", async ({ url }) => {
    const meta = { title: "", description: "", image: "", favicon: "" };
    try {
      const response = await fetch(`/unfurl?url=${encodeURIComponent(url)}`);
      if (response.ok) {
        const found = await response.json() as Partial<typeof meta>;
        for (const key of Object.keys(meta) as (keyof typeof meta)[]) {
          const value = found[key];
          if (typeof value === "string") meta[key] = value;
        }
      }
    } catch {
      // Offline or refused: a bookmark without a preview is still a link.
    }
    return {
      id: AssetRecordType.createId(getHashForString(url)),
      typeName: "asset",
      type: "bookmark",
      props: { src: url, ...meta, title: meta.title || url },
      meta: {},
    } as TLBookmarkAsset;
  });
}

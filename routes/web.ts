/**
 * The web app (web/, built by `deno task build` or `deno task dev` into web/dist): `GET /` serves its
 * `index.html`, `GET /assets/:name` its hashed files. Hashed names never change content, so they are
 * cached for a year as immutable; `index.html` is revalidated on every load (`no-cache` + ETag) so a
 * new build reaches browsers at once.
 *
 * @module
 */
import { Hono } from "hono";
import { HttpError } from "./errors.ts";

/** Options of {@link webRoutes}. */
export interface WebRouteOptions {
  /** The build directory (index.html + assets/). Default: web/dist next to this repository's routes/. */
  dir?: string;
}

/** The default build directory (`deno task build` writes it). */
export const DEFAULT_WEB_DIR: string = decodeURIComponent(
  new URL("../web/dist", import.meta.url).pathname,
);

const CONTENT_TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  map: "application/json",
  json: "application/json",
  svg: "image/svg+xml",
  png: "image/png",
  woff2: "font/woff2",
  woff: "font/woff",
};

/** Asset names as esbuild writes them: one path segment, no dot-dot, no hidden files. */
const ASSET_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

/** The site's icon (a pen stroke on a board), served for `/favicon.ico` and `/favicon.svg`. */
const FAVICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">
<rect x="2" y="2" width="28" height="28" rx="6" fill="#1d4ed8"/>
<path d="M8 22c4-8 8 2 12-6s4-4 4-4" fill="none" stroke="#fff" stroke-width="3" stroke-linecap="round"/>
</svg>
`;

/** Shown while the first build of `deno task dev` runs, or when no build exists (production). */
const NOT_BUILT_PAGE = `<!doctype html>
<meta charset="utf-8" />
<meta http-equiv="refresh" content="2" />
<title>Building…</title>
<p>The web app is not built yet. Under <code>deno task dev</code> it is being built and this page
reloads by itself; otherwise run <code>deno task build</code>.</p>
`;

async function statFile(path: string): Promise<Deno.FileInfo | undefined> {
  try {
    const info = await Deno.stat(path);
    return info.isFile ? info : undefined;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

function contentType(path: string): string {
  return CONTENT_TYPES[path.slice(path.lastIndexOf(".") + 1)] ?? "application/octet-stream";
}

/** Streams a file; Deno.serve compresses text types for clients that accept it. */
async function fileResponse(
  path: string,
  info: Deno.FileInfo,
  headers: Record<string, string>,
): Promise<Response> {
  const file = await Deno.open(path, { read: true });
  return new Response(file.readable, {
    headers: { "content-type": contentType(path), "content-length": String(info.size), ...headers },
  });
}

/** Routes serving the built web app from `options.dir`. */
export function webRoutes(options: WebRouteOptions = {}): Hono {
  const dir = options.dir ?? DEFAULT_WEB_DIR;
  const app = new Hono();
  app.get("/", async (c) => {
    const path = `${dir}/index.html`;
    const info = await statFile(path);
    if (!info) {
      return c.html(NOT_BUILT_PAGE, 503, { "cache-control": "no-store", "retry-after": "2" });
    }
    // Size and mtime change with every build that changes the page (new asset hashes).
    const etag = `"${info.size.toString(36)}-${(info.mtime?.getTime() ?? 0).toString(36)}"`;
    const cacheHeaders = { "cache-control": "no-cache", etag };
    if (c.req.header("if-none-match") === etag) {
      return c.body(null, 304, cacheHeaders);
    }
    return await fileResponse(path, info, cacheHeaders);
  });
  // Browsers ask for /favicon.ico on every page; an SVG served there is shown by all current ones.
  for (const path of ["/favicon.ico", "/favicon.svg"]) {
    app.get(path, (c) =>
      c.body(FAVICON_SVG, 200, {
        "content-type": "image/svg+xml",
        "cache-control": "public, max-age=86400",
      }));
  }
  app.get("/assets/:name", async (c) => {
    const name = c.req.param("name");
    const path = `${dir}/assets/${name}`;
    const info = ASSET_NAME.test(name) ? await statFile(path) : undefined;
    if (!info) throw new HttpError("not_found", "No such asset");
    return await fileResponse(path, info, {
      "cache-control": "public, max-age=31536000, immutable",
    });
  });
  return app;
}

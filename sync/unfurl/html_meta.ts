/**
 * Bookmark metadata from an HTML page's head: Open Graph / Twitter card tags, `<title>`, description
 * and icon links. A tolerant scan (regular expressions over tags), not a full parser: pages are
 * untrusted and often malformed, and only a handful of tags matter.
 *
 * @module
 */

/** What `GET /unfurl` returns. Missing values are omitted. */
export interface UnfurlResult {
  title?: string;
  description?: string;
  image?: string;
  favicon?: string;
}

const MAX_TEXT = 1_000;

/** Extracts {@link UnfurlResult} from `html`; relative URLs are resolved against `pageUrl`. */
export function extractMeta(html: string, pageUrl: URL): UnfurlResult {
  const metas = new Map<string, string>();
  for (const tag of html.matchAll(/<meta\b[^>]*>/gi)) {
    const attrs = attributes(tag[0]);
    const key = (attrs.get("property") ?? attrs.get("name") ?? attrs.get("itemprop"))
      ?.toLowerCase();
    const content = attrs.get("content");
    if (key && content !== undefined && !metas.has(key)) metas.set(key, content);
  }
  const titleTag = html.match(/<title\b[^>]*>([\s\S]*?)<\/title>/i)?.[1];
  const icons: { rel: string; href: string }[] = [];
  for (const tag of html.matchAll(/<link\b[^>]*>/gi)) {
    const attrs = attributes(tag[0]);
    const rel = attrs.get("rel")?.toLowerCase() ?? "";
    const href = attrs.get("href");
    if (href && /\b(icon|apple-touch-icon)\b/.test(rel)) icons.push({ rel, href });
  }
  const pick = (...keys: string[]) => {
    for (const key of keys) {
      const value = metas.get(key);
      if (value && value.trim() !== "") return clean(value);
    }
    return undefined;
  };
  const result: UnfurlResult = {};
  const title = pick("og:title", "twitter:title") ?? (titleTag ? clean(titleTag) : undefined);
  if (title) result.title = title;
  const description = pick("og:description", "twitter:description", "description");
  if (description) result.description = description;
  const image = absolute(
    pick("og:image", "og:image:url", "twitter:image", "twitter:image:src"),
    pageUrl,
  );
  if (image) result.image = image;
  // Prefer a plain icon over touch icons; fall back to the conventional location.
  const icon = icons.find((i) => /(^|\s)(shortcut\s+)?icon(\s|$)/.test(i.rel)) ?? icons[0];
  result.favicon = absolute(icon ? decodeEntities(icon.href) : undefined, pageUrl) ??
    new URL("/favicon.ico", pageUrl).href;
  return result;
}

function attributes(tag: string): Map<string, string> {
  const attrs = new Map<string, string>();
  for (
    const m of tag.matchAll(/([a-zA-Z_:][-a-zA-Z0-9_:.]*)\s*=\s*("([^"]*)"|'([^']*)'|([^\s"'>]+))/g)
  ) {
    attrs.set(m[1]!.toLowerCase(), m[3] ?? m[4] ?? m[5] ?? "");
  }
  return attrs;
}

function clean(text: string): string {
  return decodeEntities(text.replace(/<[^>]*>/g, "")).replace(/\s+/g, " ").trim().slice(
    0,
    MAX_TEXT,
  );
}

/** http(s) URLs only: a page must not hand the client a `javascript:` or `data:` URL. */
function absolute(value: string | undefined, base: URL): string | undefined {
  if (!value) return undefined;
  try {
    const url = new URL(value.trim(), base);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : undefined;
  } catch {
    return undefined;
  }
}

const NAMED: Record<string, string> = {
  amp: "&",
  lt: "<",
  gt: ">",
  quot: '"',
  apos: "'",
  nbsp: " ",
};

function decodeEntities(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#\d+|[a-zA-Z]+);/g, (whole, body: string) => {
    if (body[0] === "#") {
      const code = body[1] === "x" || body[1] === "X"
        ? parseInt(body.slice(2), 16)
        : parseInt(body.slice(1), 10);
      return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : whole;
    }
    return NAMED[body.toLowerCase()] ?? whole;
  });
}

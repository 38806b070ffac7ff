/**
 * `GET /unfurl?url=` behind the scenes: fetches a page on behalf of a client and extracts its bookmark
 * metadata, without letting the server be used to reach inside its own network (SSRF).
 *
 * Every hop is checked before a byte is sent: the scheme must be http(s); the host name is resolved and
 * every address it resolves to must pass the {@link AddressPolicy} (an IP literal is checked as is);
 * redirects are followed by hand (at most {@link UnfurlOptions.maxRedirects}) and each target is checked
 * the same way. The whole operation has a deadline, and at most `maxBytes` of the body are read.
 *
 * Known limit: the check resolves the name, then `fetch` resolves it again; a DNS server that answers
 * differently the second time (DNS rebinding) could slip through. Deploy behind an egress proxy or
 * firewall to close that window completely.
 *
 * @module
 */
import type { Logger } from "../../log.ts";
import { type AddressPolicy, publicAddressesOnly } from "./address_policy.ts";
import { extractMeta, type UnfurlResult } from "./html_meta.ts";

/** Why an unfurl failed. */
export const UnfurlError = {
  invalid_url: "invalid_url",
  blocked_address: "blocked_address",
  unresolvable: "unresolvable",
  too_many_redirects: "too_many_redirects",
  timeout: "timeout",
  http_error: "http_error",
  not_html: "not_html",
  fetch_failed: "fetch_failed",
} as const;
/** One of {@link UnfurlError}. */
export type UnfurlError = (typeof UnfurlError)[keyof typeof UnfurlError];

/** Thrown by {@link Unfurler.unfurl}. */
export class UnfurlFailure extends Error {
  constructor(readonly reason: UnfurlError, message: string) {
    super(message);
    this.name = "UnfurlFailure";
  }
}

/** Resolves a host name to IP addresses (A and AAAA). */
export type Resolver = (hostname: string) => Promise<string[]>;

/** The system resolver through `Deno.resolveDns`. */
export const dnsResolver: Resolver = async (hostname) => {
  const settled = await Promise.allSettled([
    Deno.resolveDns(hostname, "A"),
    Deno.resolveDns(hostname, "AAAA"),
  ]);
  return settled.flatMap((result) => result.status === "fulfilled" ? result.value : []);
};

/** Options of {@link Unfurler}. */
export interface UnfurlOptions {
  /** Cache (results for `cacheTtlMs`); absent: no caching. */
  kv?: Deno.Kv;
  log?: Logger;
  cacheTtlMs?: number;
  /** Deadline of one unfurl, all hops included (default 5000 ms). */
  timeoutMs?: number;
  /** Body bytes read at most (default 1 MiB; metadata lives in the head). */
  maxBytes?: number;
  maxRedirects?: number;
  /**
   * Test seams. Production uses {@link publicAddressesOnly}, {@link dnsResolver} and the global
   * `fetch`; tests allow their own loopback server and count what reaches `fetch`.
   */
  policy?: AddressPolicy;
  resolve?: Resolver;
  fetch?: typeof fetch;
}

const USER_AGENT = "Mozilla/5.0 (compatible; deno-sync-unfurl/1.0; +bookmark preview)";

/** Fetches pages and extracts their bookmark metadata, with SSRF protection and a KV cache. */
export class Unfurler {
  readonly #options: UnfurlOptions;
  readonly #policy: AddressPolicy;
  readonly #resolve: Resolver;
  readonly #fetch: typeof fetch;

  constructor(options: UnfurlOptions = {}) {
    this.#options = options;
    this.#policy = options.policy ?? publicAddressesOnly;
    this.#resolve = options.resolve ?? dnsResolver;
    this.#fetch = options.fetch ?? fetch;
  }

  /** Metadata of the page at `rawUrl` (cached). Throws {@link UnfurlFailure}. */
  async unfurl(rawUrl: string): Promise<UnfurlResult> {
    const url = parseTarget(rawUrl);
    const key = await cacheKey(url.href);
    const kv = this.#options.kv;
    if (kv) {
      const cached = await kv.get<UnfurlResult>(key);
      if (cached.value) return cached.value;
    }
    const result = await this.#fetchMeta(url);
    if (kv) {
      await kv.set(key, result, { expireIn: this.#options.cacheTtlMs ?? 24 * 3_600_000 })
        .catch((error) => this.#options.log?.warn("unfurl cache write failed", { error }));
    }
    return result;
  }

  async #fetchMeta(start: URL): Promise<UnfurlResult> {
    const signal = AbortSignal.timeout(this.#options.timeoutMs ?? 5_000);
    const maxRedirects = this.#options.maxRedirects ?? 5;
    let url = start;
    try {
      for (let hop = 0;; hop++) {
        await this.#check(url);
        const response = await this.#fetch(url, {
          redirect: "manual",
          signal,
          headers: { "user-agent": USER_AGENT, accept: "text/html,application/xhtml+xml" },
        });
        if (response.status >= 300 && response.status < 400 && response.headers.has("location")) {
          await response.body?.cancel();
          if (hop >= maxRedirects) {
            throw new UnfurlFailure(UnfurlError.too_many_redirects, "too many redirects");
          }
          url = parseTarget(new URL(response.headers.get("location")!, url).href);
          continue;
        }
        if (!response.ok) {
          await response.body?.cancel();
          throw new UnfurlFailure(UnfurlError.http_error, `the page answered ${response.status}`);
        }
        const type = response.headers.get("content-type") ?? "";
        if (type.startsWith("image/")) {
          await response.body?.cancel();
          return { image: url.href, favicon: new URL("/favicon.ico", url).href };
        }
        if (!/text\/html|application\/xhtml\+xml/i.test(type)) {
          await response.body?.cancel();
          throw new UnfurlFailure(UnfurlError.not_html, `not an HTML page (${type || "no type"})`);
        }
        const html = await readCapped(response, this.#options.maxBytes ?? 1024 * 1024);
        return extractMeta(html, url);
      }
    } catch (error) {
      if (error instanceof UnfurlFailure) throw error;
      if (signal.aborted) throw new UnfurlFailure(UnfurlError.timeout, "the page took too long");
      throw new UnfurlFailure(UnfurlError.fetch_failed, `fetching the page failed: ${error}`);
    }
  }

  /** Refuses `url` unless every address its host resolves to passes the policy. */
  async #check(url: URL): Promise<void> {
    const host = url.hostname.replace(/^\[|\]$/g, "");
    const port = url.port !== "" ? Number(url.port) : url.protocol === "https:" ? 443 : 80;
    const literal = /^[\d.]+$/.test(host) || host.includes(":");
    let addresses: string[];
    if (literal) addresses = [host];
    else {
      try {
        addresses = await this.#resolve(host);
      } catch {
        addresses = [];
      }
      if (addresses.length === 0) {
        throw new UnfurlFailure(UnfurlError.unresolvable, `cannot resolve ${host}`);
      }
    }
    const refused = addresses.find((address) => !this.#policy(address, port));
    if (refused !== undefined) {
      throw new UnfurlFailure(UnfurlError.blocked_address, "the address is not allowed");
    }
  }
}

/** Parses and checks a target URL: http(s), no credentials, a sane length. */
export function parseTarget(raw: string): URL {
  if (raw.length > 2_048) throw new UnfurlFailure(UnfurlError.invalid_url, "the URL is too long");
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UnfurlFailure(UnfurlError.invalid_url, "not a URL");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new UnfurlFailure(UnfurlError.invalid_url, "only http and https URLs");
  }
  if (url.username || url.password) {
    throw new UnfurlFailure(UnfurlError.invalid_url, "URLs with credentials are not fetched");
  }
  url.hash = "";
  return url;
}

async function cacheKey(url: string): Promise<Deno.KvKey> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(url));
  return ["unfurl", btoa(String.fromCharCode(...new Uint8Array(digest)))];
}

/** Reads at most `maxBytes` of the body (then stops the download) and decodes it as text. */
async function readCapped(response: Response, maxBytes: number): Promise<string> {
  if (!response.body) return "";
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    while (total < maxBytes) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      total += value.byteLength;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  const bytes = new Uint8Array(Math.min(total, maxBytes));
  let offset = 0;
  for (const chunk of chunks) {
    const part = chunk.subarray(0, Math.min(chunk.byteLength, bytes.byteLength - offset));
    bytes.set(part, offset);
    offset += part.byteLength;
    if (offset >= bytes.byteLength) break;
  }
  return new TextDecoder().decode(bytes);
}

/**
 * Addresses of this server's sync endpoints, derived from the page's own origin: the app is served by
 * the same server it syncs with, so no configuration is needed.
 *
 * @module
 */

/** `ws:` under `http:`, `wss:` under `https:` (a secure page may not open plain sockets). */
function wsOrigin(): string {
  const protocol = location.protocol === "https:" ? "wss:" : "ws:";
  return `${protocol}//${location.host}`;
}

/** A public room's socket: read-write on `/r/`, read-only on `/ro/`. */
export function roomSocketUrl(roomId: string, readonly: boolean): string {
  return `${wsOrigin()}/${readonly ? "ro" : "r"}/${encodeURIComponent(roomId)}`;
}

/** A file's room; the token travels as a query parameter because browsers cannot set headers on upgrades. */
export function fileSocketUrl(fileId: string, token: string): string {
  return `${wsOrigin()}/app/file/${encodeURIComponent(fileId)}?token=${encodeURIComponent(token)}`;
}

/** The user-data channel (protocol version 2). */
export function userDataSocketUrl(userId: string, token: string): string {
  const query = new URLSearchParams({
    sessionId: crypto.randomUUID(),
    protocolVersion: "2",
    token,
  });
  return `${wsOrigin()}/app/${encodeURIComponent(userId)}/connect?${query}`;
}

/** A link to a page of this app (hash routes keep `/r/…` free for the room sockets). */
export function appLink(route: string): string {
  return `${location.origin}/#${route}`;
}

/**
 * The app's pages as hash routes (`#/r/<id>`, `#/ro/<id>`, `#/file/<id>`, `#/p/<published slug>`): the server's `/r/<id>` paths
 * are WebSocket endpoints, so page addresses live in the fragment.
 *
 * @module
 */
import { useEffect, useState } from "react";

/** A page of the app. */
export type Route =
  | { page: "home" }
  | { page: "room"; roomId: string; readonly: boolean }
  | { page: "file"; fileId: string }
  | { page: "published"; slug: string }
  | { page: "admin" };

/** Parses `location.hash`; anything unknown is the home page. */
export function parseRoute(hash: string): Route {
  const [kind, rawId] = hash.replace(/^#\/?/, "").split("/", 2);
  const id = rawId ? decodeURIComponent(rawId) : "";
  if (kind === "admin") return { page: "admin" };
  if (!id) return { page: "home" };
  if (kind === "r" || kind === "ro") return { page: "room", roomId: id, readonly: kind === "ro" };
  if (kind === "file") return { page: "file", fileId: id };
  if (kind === "p") return { page: "published", slug: id };
  return { page: "home" };
}

/** The hash of a route, e.g. `/r/abc`. */
export function routePath(route: Route): string {
  switch (route.page) {
    case "home":
      return "/";
    case "room":
      return `/${route.readonly ? "ro" : "r"}/${encodeURIComponent(route.roomId)}`;
    case "file":
      return `/file/${encodeURIComponent(route.fileId)}`;
    case "published":
      return `/p/${encodeURIComponent(route.slug)}`;
    case "admin":
      return "/admin";
  }
}

/** Navigates to `route`. */
export function navigate(route: Route): void {
  location.hash = routePath(route);
}

/** The current route, following hash changes. */
export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseRoute(location.hash));
    addEventListener("hashchange", onChange);
    return () => removeEventListener("hashchange", onChange);
  }, []);
  return route;
}

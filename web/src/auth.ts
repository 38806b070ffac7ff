/**
 * Signing in: with the server's development identity provider (`POST /auth/dev/token`; the token
 * is kept in localStorage so a reload stays signed in, and dropped when it expires), or with a real
 * identity provider that leaves its JWT in this site's `__session` cookie (Clerk does), read here
 * when nothing is stored.
 *
 * @module
 */
import { useCallback, useState } from "react";

/** A signed-in user. */
export interface Session {
  userId: string;
  name: string;
  token: string;
  /** Milliseconds since the epoch. */
  expiresAt: number;
}

const STORAGE_KEY = "deno-sync.session";

function loadSession(): Session | undefined {
  try {
    const session = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? "null") as Session | null;
    // A minute of margin: a token about to expire would be refused on the next reconnect.
    if (session && session.expiresAt > Date.now() + 60_000) return session;
  } catch {
    // Unreadable: fall through to the cookie.
  }
  return cookieSession();
}

/**
 * The session of a JWT in the `__session` cookie (a real identity provider's). The server verifies
 * the token; here it is only read for the user's id and name.
 */
function cookieSession(): Session | undefined {
  const token = document.cookie.split("; ").find((part) => part.startsWith("__session="))
    ?.slice("__session=".length);
  if (!token) return undefined;
  try {
    const payload = JSON.parse(
      atob(token.split(".")[1]!.replace(/-/g, "+").replace(/_/g, "/")),
    ) as { sub?: string; name?: string; exp?: number };
    if (!payload.sub || !payload.exp || payload.exp * 1000 < Date.now() + 60_000) return undefined;
    return {
      userId: payload.sub,
      name: payload.name ?? payload.sub,
      token: decodeURIComponent(token),
      expiresAt: payload.exp * 1000,
    };
  } catch {
    return undefined;
  }
}

/** Asks the dev identity provider for a token. Throws with the server's message when refused. */
export async function requestDevToken(userId: string, name: string): Promise<Session> {
  const response = await fetch("/auth/dev/token", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ userId, name, email: `${userId}@example.com` }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(
      response.status === 404
        ? "The dev identity provider is off on this server (it is on under `deno task dev`)."
        : body?.error?.message ?? `sign-in failed (${response.status})`,
    );
  }
  return { userId, name, token: body.token, expiresAt: body.expiresAt };
}

/** The current session and functions to sign in and out. */
export function useSession(): {
  session: Session | undefined;
  signIn(userId: string, name: string): Promise<void>;
  signOut(): void;
} {
  const [session, setSession] = useState(loadSession);
  const signIn = useCallback(async (userId: string, name: string) => {
    const next = await requestDevToken(userId, name);
    localStorage.setItem(STORAGE_KEY, JSON.stringify(next));
    setSession(next);
  }, []);
  const signOut = useCallback(() => {
    localStorage.removeItem(STORAGE_KEY);
    setSession(undefined);
  }, []);
  return { session, signIn, signOut };
}

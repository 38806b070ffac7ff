/**
 * Signing in with the server's development identity provider (`POST /auth/dev/token`). The token is
 * kept in localStorage so a reload stays signed in; it is dropped when it expires.
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
    return session && session.expiresAt > Date.now() + 60_000 ? session : undefined;
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

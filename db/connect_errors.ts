/**
 * Turns the errors of a first connection to Postgres into sentences a person can act on: which
 * server could not be reached, and what to do about it. Anything that is not a connection problem
 * is left alone (`undefined`).
 *
 * @module
 */

/** Where `url` points, without its password: `user@host:port/database`. */
export function describeDatabaseUrl(url: string): string {
  try {
    const parsed = new URL(url);
    const user = parsed.username ? `${decodeURIComponent(parsed.username)}@` : "";
    const database = parsed.pathname.replace(/^\//, "");
    return `${user}${parsed.hostname}:${parsed.port || "5432"}${database ? `/${database}` : ""}`;
  } catch {
    return "(unparsable DATABASE_URL)";
  }
}

const FIX = "Check DATABASE_URL, or unset it to use the embedded database (PGlite).";

/**
 * A message for a failed first connection to the database at `url`, or `undefined` when `error`
 * is not about reaching or logging in to the server.
 */
export function explainConnectError(error: unknown, url: string): string | undefined {
  const where = describeDatabaseUrl(url);
  const { hostname, port } = safeUrl(url);
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : String(error);
  switch (code) {
    case "ECONNREFUSED":
      return `The database at ${hostname}:${port} cannot be reached (connection refused): is ` +
        `Postgres running there? ${FIX}`;
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return `The database host "${hostname}" cannot be resolved. ${FIX}`;
    case "ETIMEDOUT":
    case "CONNECT_TIMEOUT":
      return `The database at ${hostname}:${port} did not answer in time. ${FIX}`;
    case "3D000":
      return `The database server at ${hostname}:${port} has no such database (${message}). ` +
        `Create it (e.g. \`createdb\`), or fix DATABASE_URL.`;
    case "28000":
    case "28P01":
      return `The database at ${where} refused the login (${message}). Fix the user or ` +
        `password in DATABASE_URL.`;
  }
  if (message.includes("database ping timed out")) {
    return `The database at ${hostname}:${port} did not answer in time. ${FIX}`;
  }
  return undefined;
}

function safeUrl(url: string): { hostname: string; port: string } {
  try {
    const parsed = new URL(url);
    return { hostname: parsed.hostname, port: parsed.port || "5432" };
  } catch {
    return { hostname: "?", port: "?" };
  }
}

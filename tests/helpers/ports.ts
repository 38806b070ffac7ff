/**
 * A free TCP port on loopback (for servers that must be told their port before they start).
 *
 * @module
 */

/** A port nothing listens on just now. */
export function freePort(): number {
  const listener = Deno.listen({ port: 0, hostname: "127.0.0.1" });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** A port that is free together with the next one (zero-cache listens on both). */
export function freePortPair(): number {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = freePort();
    try {
      Deno.listen({ port: port + 1, hostname: "127.0.0.1" }).close();
      return port;
    } catch {
      // The next port is taken: try another.
    }
  }
  throw new Error("no two consecutive free ports on loopback");
}

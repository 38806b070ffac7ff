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

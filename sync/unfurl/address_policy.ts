/**
 * Which network addresses the unfurler may connect to. Everything that reaches inside the server's own
 * network is refused: loopback, private (RFC 1918, unique-local), link-local (including the cloud
 * metadata address 169.254.169.254), carrier-grade NAT, multicast, unspecified and reserved ranges,
 * and IPv6 forms that embed such an IPv4 address (mapped, NAT64, 6to4).
 *
 * @module
 */

/** Decides whether a connection to `address` (an IP literal) on `port` is allowed. */
export type AddressPolicy = (address: string, port: number) => boolean;

/** The production policy: public unicast addresses only, any port. */
export const publicAddressesOnly: AddressPolicy = (address) => !isNonPublicAddress(address);

const BLOCKED_V4: [base: string, bits: number][] = [
  ["0.0.0.0", 8], // "this network"
  ["10.0.0.0", 8], // private
  ["100.64.0.0", 10], // carrier-grade NAT
  ["127.0.0.0", 8], // loopback
  ["169.254.0.0", 16], // link-local, cloud metadata
  ["172.16.0.0", 12], // private
  ["192.0.0.0", 24], // IETF protocol assignments
  ["192.0.2.0", 24], // documentation
  ["192.88.99.0", 24], // 6to4 relay anycast
  ["192.168.0.0", 16], // private
  ["198.18.0.0", 15], // benchmarking
  ["198.51.100.0", 24], // documentation
  ["203.0.113.0", 24], // documentation
  ["224.0.0.0", 4], // multicast
  ["240.0.0.0", 4], // reserved, broadcast
];

/** `true` for any address that is not public unicast (see the module doc). Unparsable → `true`. */
export function isNonPublicAddress(address: string): boolean {
  const v4 = parseIPv4(address);
  if (v4 !== null) return isBlockedV4(v4);
  const v6 = parseIPv6(address.replace(/^\[|\]$/g, "").replace(/%.*$/, ""));
  if (v6 === null) return true;
  const word = (i: number) => v6[i]!;
  const allZero = (from: number, to: number) => v6.slice(from, to).every((w) => w === 0);
  const embeddedV4 = (hi: number, lo: number) => ((hi << 16) >>> 0) + lo;
  if (allZero(0, 8)) return true; // ::
  if (allZero(0, 7) && word(7) === 1) return true; // ::1
  if (allZero(0, 5) && word(5) === 0xffff) return isBlockedV4(embeddedV4(word(6), word(7))); // mapped
  if (allZero(0, 6)) return true; // deprecated IPv4-compatible ::a.b.c.d
  if (word(0) === 0x64 && word(1) === 0xff9b && allZero(2, 6)) {
    return isBlockedV4(embeddedV4(word(6), word(7))); // NAT64
  }
  if (word(0) === 0x2002) return isBlockedV4(embeddedV4(word(1), word(2))); // 6to4
  if ((word(0) & 0xfe00) === 0xfc00) return true; // unique local fc00::/7
  if ((word(0) & 0xffc0) === 0xfe80) return true; // link-local fe80::/10
  if ((word(0) & 0xffc0) === 0xfec0) return true; // site-local (deprecated)
  if ((word(0) & 0xff00) === 0xff00) return true; // multicast
  if (word(0) === 0x2001 && word(1) === 0x0db8) return true; // documentation
  if (word(0) === 0x0100 && allZero(1, 4)) return true; // discard-only 100::/64
  return false;
}

function isBlockedV4(value: number): boolean {
  return BLOCKED_V4.some(([base, bits]) => {
    const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
    return ((value & mask) >>> 0) === ((parseIPv4(base)! & mask) >>> 0);
  });
}

/** Dotted-quad IPv4 → 32-bit number, or `null`. */
export function parseIPv4(text: string): number | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  let value = 0;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part)) return null;
    const n = Number(part);
    if (n > 255) return null;
    value = value * 256 + n;
  }
  return value;
}

/** IPv6 text → eight 16-bit words, or `null`. Accepts `::` compression and a trailing IPv4. */
export function parseIPv6(text: string): number[] | null {
  if (!/^[0-9a-fA-F:.]+$/.test(text) || !text.includes(":")) return null;
  let tail: number[] = [];
  let head = text;
  const lastColon = text.lastIndexOf(":");
  if (text.slice(lastColon + 1).includes(".")) {
    const v4 = parseIPv4(text.slice(lastColon + 1));
    if (v4 === null) return null;
    tail = [v4 >>> 16, v4 & 0xffff];
    // "::ffff:1.2.3.4" → "::ffff"; "::1.2.3.4" → "::" (the colon then belongs to the "::").
    head = text.slice(0, lastColon).endsWith(":")
      ? text.slice(0, lastColon + 1)
      : text.slice(0, lastColon);
  }
  const halves = head.split("::");
  if (halves.length > 2) return null;
  const parse = (s: string) => s === "" ? [] : s.split(":");
  const left = parse(halves[0]!);
  const right = halves.length === 2 ? parse(halves[1]!) : [];
  const words = [...left, ...right].map((w) =>
    /^[0-9a-fA-F]{1,4}$/.test(w) ? parseInt(w, 16) : NaN
  );
  if (words.some(Number.isNaN)) return null;
  const total = words.length + tail.length;
  if (halves.length === 1) {
    if (total !== 8) return null;
    return [...words, ...tail];
  }
  if (total > 7) return null;
  const zeros = new Array(8 - total).fill(0);
  return [
    ...left.map((w) => parseInt(w, 16)),
    ...zeros,
    ...right.map((w) => parseInt(w, 16)),
    ...tail,
  ];
}

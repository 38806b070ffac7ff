/**
 * The installed PGlite version, part of the test snapshot cache key (a new PGlite may not read an
 * older data directory).
 *
 * @module
 */
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
let version = "unknown";
try {
  version = (require("@electric-sql/pglite/package.json") as { version: string }).version;
} catch {
  // Fall back to a key that still separates from real versions.
}

/** e.g. `0.5.16` */
export default version;

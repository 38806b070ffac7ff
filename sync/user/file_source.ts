/**
 * A new file's `createSource` (tldraw's names): the document it starts as a copy of.
 *
 * | source | copies |
 * |---|---|
 * | `f/<fileId>` | another file the creator can open |
 * | `p/<slug>` | a published file's copy |
 * | `s/<slug>` | a shared snapshot |
 * | `r/<roomId>` | an anonymous room (its id or its read-only id) |
 *
 * @module
 */

/** A parsed `createSource`. */
export type FileSource =
  | { kind: "file"; fileId: string }
  | { kind: "published"; slug: string }
  | { kind: "snapshot"; slug: string }
  | { kind: "room"; roomId: string };

const PREFIXES = { f: "file", p: "published", s: "snapshot", r: "room" } as const;

const SOURCE_PATTERN = /^([fpsr])\/([A-Za-z0-9_-]{1,128})$/;

/** The source named by `createSource`, or `null` when it is not one of the four forms. */
export function parseCreateSource(createSource: unknown): FileSource | null {
  if (typeof createSource !== "string") return null;
  const match = SOURCE_PATTERN.exec(createSource);
  if (!match) return null;
  const id = match[2]!;
  switch (PREFIXES[match[1] as keyof typeof PREFIXES]) {
    case "file":
      return { kind: "file", fileId: id };
    case "published":
      return { kind: "published", slug: id };
    case "snapshot":
      return { kind: "snapshot", slug: id };
    case "room":
      return { kind: "room", roomId: id };
  }
}

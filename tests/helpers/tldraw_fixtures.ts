/**
 * Records the tests and benchmarks push: a valid default-schema geo shape and a presence body.
 *
 * @module
 */

/** A valid geo shape record on `page:page`. */
export function geoShape(id: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id,
    typeName: "shape",
    type: "geo",
    x: 0,
    y: 0,
    rotation: 0,
    index: "a1",
    parentId: "page:page",
    isLocked: false,
    opacity: 1,
    meta: {},
    props: {
      w: 100,
      h: 100,
      geo: "rectangle",
      color: "black",
      labelColor: "black",
      fill: "none",
      dash: "draw",
      size: "m",
      font: "draw",
      align: "middle",
      verticalAlign: "middle",
      growY: 0,
      url: "",
      richText: { type: "doc", content: [{ type: "paragraph" }] },
      scale: 1,
      flipX: false,
      flipY: false,
    },
    ...extra,
  };
}

/** The body of a presence push (the server forces `id` and `typeName`), cursor at `x`. */
export function presenceRecord(x: number): Record<string, unknown> {
  return {
    userId: "user:u",
    userName: "U",
    lastActivityTimestamp: 1,
    color: "#000000",
    camera: { x: 0, y: 0, z: 1 },
    selectedShapeIds: [],
    currentPageId: "page:page",
    brush: null,
    scribbles: [],
    screenBounds: null,
    followingUserId: null,
    cursor: { x, y: 0, type: "default", rotation: 0 },
    chatMessage: "",
    meta: {},
  };
}

/**
 * Fault injection and counting around real stores: `target` with some of its methods replaced.
 *
 * @module
 */

/** `target` with the methods in `overrides` replaced; every other method stays bound to `target`. */
export function withOverrides<T extends object>(target: T, overrides: Partial<T>): T {
  return new Proxy(target, {
    get(object, property) {
      if (Object.hasOwn(overrides, property)) return overrides[property as keyof T];
      const value = Reflect.get(object, property, object);
      return typeof value === "function" ? value.bind(object) : value;
    },
  });
}

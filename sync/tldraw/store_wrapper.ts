/**
 * One way to wrap a store: every method call passes through `around`, which decides what happens
 * around it (retry it, time it, count it). Methods the store lacks stay missing (callers test for
 * optional ones such as `saveSnapshot`), and methods added to the interface later are wrapped
 * without anyone restating them.
 *
 * @module
 */

/** A method call as `around` sees it: its name, its arguments, and how to make it. */
export interface MethodCall<T> {
  readonly method: keyof T & string;
  readonly args: readonly unknown[];
  call(): unknown;
}

/** `target` with every method call passed through `around` (which returns the call's result). */
export function wrapMethods<T extends object>(
  target: T,
  around: (call: MethodCall<T>) => unknown,
): T {
  const wrapped = new Map<PropertyKey, unknown>();
  return new Proxy(target, {
    get(object, property) {
      const value = Reflect.get(object, property, object);
      if (typeof value !== "function") return value;
      let method = wrapped.get(property);
      if (!method) {
        method = (...args: unknown[]) =>
          around({
            method: property as keyof T & string,
            args,
            call: () => value.apply(object, args),
          });
        wrapped.set(property, method);
      }
      return method;
    },
  });
}

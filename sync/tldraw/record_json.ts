/**
 * The JSON text of records, computed once per record object. Records are never mutated once built
 * (patches make new objects, see diff.ts), so a record's text stays true for as long as the object
 * lives: the text read from KV at load serves the connect replies of a 5,000-shape room without
 * serializing it again, and a pushed record is serialized once for its size check and its KV write.
 *
 * @module
 */

const texts = new WeakMap<object, string>();

/** `JSON.stringify(record)`, from the cache when this object was serialized or loaded before. */
export function recordJson(record: object): string {
  let text = texts.get(record);
  if (text === undefined) {
    text = JSON.stringify(record);
    texts.set(record, text);
  }
  return text;
}

/** Remembers `text` as the JSON of `record` (it was parsed from that text). */
export function rememberRecordJson(record: object, text: string): void {
  texts.set(record, text);
}

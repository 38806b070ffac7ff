/**
 * The JSON text of records, computed once per record object. Records are never mutated once built
 * (patches make new objects, see diff.ts), so a record's text stays true for as long as the object
 * lives: the text read from KV at load serves the connect replies of a 5,000-shape room without
 * serializing it again, and a pushed record is serialized once for its size check and its KV write.
 *
 * A record loaded from storage is a {@link LazyRecord}: its JSON is parsed on first use of `state`.
 * A cold join of a 5,000-shape room needs the records' texts (for the connect reply), not their
 * objects: parsing them all was over half of the load (~28 of ~50 ms), and most are never touched.
 *
 * @module
 */
import type { WireRecord } from "./protocol.ts";
import type { StoredRecord } from "./room_store.ts";

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

/** A stored record known by its id and JSON; `state` parses the JSON on first use (then kept). */
export class LazyRecord implements StoredRecord {
  readonly id: string;
  readonly json: string;
  readonly lastChangedClock: number;
  readonly chars: number;
  #state: WireRecord | undefined;

  constructor(id: string, json: string, lastChangedClock: number) {
    this.id = id;
    this.json = json;
    this.lastChangedClock = lastChangedClock;
    this.chars = json.length;
  }

  get state(): WireRecord {
    if (this.#state === undefined) {
      this.#state = JSON.parse(this.json) as WireRecord;
      rememberRecordJson(this.#state, this.json);
    }
    return this.#state;
  }
}

/** The id of a stored record, without parsing a {@link LazyRecord}. */
export function storedRecordId(record: StoredRecord): string {
  return record instanceof LazyRecord ? record.id : record.state.id;
}

/** The JSON of a stored record, without parsing a {@link LazyRecord}. */
export function storedRecordJson(record: StoredRecord): string {
  return record instanceof LazyRecord ? record.json : recordJson(record.state);
}

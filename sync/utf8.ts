/**
 * UTF-8 sizes of strings without encoding them (socket byte metrics, bus payload limits).
 *
 * @module
 */

const NON_ASCII = /[\u0080-\uffff]/;

/** UTF-8 length of `text` without encoding it. */
export function utf8Length(text: string): number {
  // Most texts are ASCII: a native scan, instead of a JS loop over every character.
  if (!NON_ASCII.test(text)) return text.length;
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) continue;
    if (unit < 0x800) bytes += 1;
    else if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i++; // a pair: 4 bytes for 2 units
      bytes += 2; // a lone surrogate is written as U+FFFD: 3 bytes
    } else bytes += 2;
  }
  return bytes;
}

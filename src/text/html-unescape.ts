import { HTML5_ENTITIES } from './html5-entities.js';
import { CP1252_C1 } from './cp1252.js';

/**
 * HTML character references decoded the way Python's `html.unescape` does (open_clip runs it twice on
 * every text), which follows the HTML5 rules for text content:
 * - named references from the HTML5 list, with or without the ';' for the legacy names ("&amp",
 *   "&eacutex" → "éx": the longest known prefix wins);
 * - numeric references, decimal or hex, with or without the ';'; code points HTML says were meant as
 *   Windows-1252 (128–159) become those characters, NUL / surrogates / out of range become U+FFFD, and
 *   the other code points HTML forbids (C0/C1 controls, noncharacters) are dropped.
 */

const ENTITIES: ReadonlyMap<string, string> = new Map(Object.entries(HTML5_ENTITIES));

/** Names with at least one character and at most 32, as HTML's reference syntax allows, then an optional ';'. */
const REFERENCE = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/gu;

function isForbiddenCodePoint(cp: number): boolean {
  return (
    (cp >= 0x01 && cp <= 0x08) ||
    cp === 0x0b ||
    (cp >= 0x0e && cp <= 0x1f) ||
    (cp >= 0x7f && cp <= 0x9f) ||
    (cp >= 0xfdd0 && cp <= 0xfdef) ||
    (cp & 0xfffe) === 0xfffe // U+xFFFE and U+xFFFF of every plane
  );
}

/** The text a numeric reference stands for (`digits` without '#', 'x' or ';'). */
export function numericReference(digits: string, radix: 10 | 16): string {
  const cp = parseInt(digits, radix);
  if (cp === 0) return '\ufffd';
  if (cp === 0x0d) return '\r';
  if (cp >= 0x80 && cp <= 0x9f) return CP1252_C1[cp - 0x80]!;
  if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return '\ufffd';
  if (isForbiddenCodePoint(cp)) return '';
  return String.fromCodePoint(cp);
}

function replaceReference(whole: string, body: string): string {
  if (body[0] === '#') {
    const hex = body[1] === 'x' || body[1] === 'X';
    const digits = body.slice(hex ? 2 : 1).replace(/;$/, '');
    return numericReference(digits, hex ? 16 : 10);
  }
  const exact = ENTITIES.get(body);
  if (exact !== undefined) return exact;
  const chars = [...body];
  for (let n = chars.length - 1; n >= 2; n--) {
    const prefix = chars.slice(0, n).join('');
    const value = ENTITIES.get(prefix);
    if (value !== undefined) return value + chars.slice(n).join('');
  }
  return whole;
}

/** Python's `html.unescape(text)`. */
export function unescapeHtml(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(REFERENCE, replaceReference);
}

/** Whether `name` (as written after '&', e.g. "amp;") is an HTML5 named reference. */
export function isHtml5EntityName(name: string): boolean {
  return ENTITIES.has(name);
}

/** The characters HTML5 named reference `name` (e.g. "amp;") stands for. */
export function html5Entity(name: string): string | undefined {
  return ENTITIES.get(name);
}

/** Every HTML5 named reference, as [name, characters]. */
export function html5Entities(): IterableIterator<[string, string]> {
  return ENTITIES.entries();
}

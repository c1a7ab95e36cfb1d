import { CP1252_C1 } from './cp1252.js';

/**
 * Repair of the commonest mojibake: UTF-8 bytes that were decoded as Latin-1 or Windows-1252
 * ("cafÃ©" for "café", "donâ€™t" for "don’t", "ðŸŽ¨" for "🎨"). It is the part of ftfy's
 * `fix_encoding` that matters for prompt text, reimplemented from its documented behaviour:
 *
 * - A text is re-encoded and decoded as UTF-8 only when it shows a convincing mojibake sequence (see
 *   `isConvincing`), so legitimate text such as "Straße—the" or "naïve" is left alone.
 * - The whole text is tried first as Latin-1, then as Windows-1252 (whose five unassigned bytes pass
 *   through, as browsers decode them). Before decoding, a space that stands where the no-break-space
 *   byte of a UTF-8 sequence belongs is put back ("Ã la" → "à la"), and in Windows-1252 a U+FFFD that
 *   replaced a lost byte turns the whole broken sequence into one U+FFFD.
 * - When the whole text does not decode (mojibake mixed with real accents), each run of mojibake is
 *   repaired on its own.
 * - Remaining C1 control characters are read as the Windows-1252 characters they almost always are.
 * - The repair repeats until nothing changes, which undoes mojibake applied twice.
 *
 * Not ported: ftfy's other code pages (Windows-1250/1251/1253/1254/1257, ISO-8859-2, MacRoman, cp437)
 * and its character-class heuristic for what "looks bad"; the texts this engine sees (prompts, label
 * lists) are Latin-script, where these two code pages account for practically all mojibake.
 */

type ByteCodec = {
  /** The byte for code point `cp`, or -1 when the code page has none. */
  byteOf(cp: number): number;
  /** Whether U+FFFD stands for a lost byte (encoded as 0x1A), so lossy sequences can be recognised. */
  lossy: boolean;
};

const CP1252_BYTE = new Map<number, number>(CP1252_C1.map((c, i) => [c.codePointAt(0)!, 0x80 + i]));

const LATIN_1: ByteCodec = { byteOf: (cp) => (cp <= 0xff ? cp : -1), lossy: false };

/** Windows-1252 as browsers decode it (unassigned bytes kept), with U+FFFD written as byte 0x1A (SUBSTITUTE). */
const WINDOWS_1252: ByteCodec = {
  byteOf(cp) {
    if (cp === 0xfffd) return 0x1a;
    if (cp === 0x1a) return -1;
    if (cp < 0x80 || (cp >= 0xa0 && cp <= 0xff)) return cp;
    return CP1252_BYTE.get(cp) ?? -1;
  },
  lossy: true,
};

const CODECS: readonly ByteCodec[] = [LATIN_1, WINDOWS_1252];

function encode(text: string, codec: ByteCodec): Uint8Array | undefined {
  const out: number[] = [];
  for (const ch of text) {
    const b = codec.byteOf(ch.codePointAt(0)!);
    if (b < 0) return undefined;
    out.push(b);
  }
  return Uint8Array.from(out);
}

/** The byte a character stands for in mojibake from either code page (-1: none). */
function mojibakeByte(cp: number): number {
  return cp <= 0xff ? cp : (CP1252_BYTE.get(cp) ?? -1);
}

const isContinuation = (b: number): boolean => b >= 0x80 && b <= 0xbf;

/** Length of the UTF-8 sequence byte `b` starts (2–4), or 0 when it cannot start one. */
function sequenceLength(b: number): number {
  if (b >= 0xc2 && b <= 0xdf) return 2;
  if (b >= 0xe0 && b <= 0xef) return 3;
  if (b >= 0xf0 && b <= 0xf4) return 4;
  return 0;
}

/**
 * Punctuation that legitimately follows a letter ("Straße—", "Łódź…"): after lead bytes other than
 * those of Â and Ã it is not taken as evidence of mojibake.
 */
const WORD_FOLLOWING_PUNCTUATION = new Set([0x82, 0x84, 0x85, 0x91, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0xa0]);

/**
 * Lead bytes of the two-byte UTF-8 sequences that Latin-script text turns into mojibake: Â and Ã
 * (U+0080–U+00FF: Latin-1 symbols and accented letters), Ä and Å (Latin Extended-A: Polish, Czech,
 * Turkish... letters), Î, Ï, Ð, Ñ (Greek and Cyrillic). Other leads followed by a symbol ("Ò¶", "5×½")
 * are far more often what they look like.
 */
const TELLING_LEADS = new Set([0xc2, 0xc3, 0xc4, 0xc5, 0xce, 0xcf, 0xd0, 0xd1]);

/** Opening punctuation among those: glued between a lower-case letter and the rest of a word it is not punctuation. */
const OPENING_PUNCTUATION = new Set([0x82, 0x84, 0x91, 0x93, 0x95]);

/**
 * Whether a UTF-8-shaped sequence (bytes as mojibake characters) is convincing evidence of mojibake:
 * three- and four-byte sequences always are; a two-byte one when its lead is Â or Ã, or another
 * telling lead followed by something other than word-following punctuation, or by opening
 * punctuation right after a lower-case letter ("BeksiÅ„ski" for "Beksiński"). `before` is the
 * character before the sequence.
 */
function isConvincing(seq: readonly number[], before: string | undefined): boolean {
  if (seq.length > 2) return true;
  const [lead, next] = seq as [number, number];
  if (lead === 0xc2 || lead === 0xc3) return true;
  if (!TELLING_LEADS.has(lead)) return false;
  if (!WORD_FOLLOWING_PUNCTUATION.has(next)) return true;
  return OPENING_PUNCTUATION.has(next) && before !== undefined && before >= 'a' && before <= 'z';
}

const hasC1 = (text: string): boolean => /[\u0080-\u009f]/.test(text);

/**
 * "Ã " or "Â " where a no-break-space byte was turned into a space: at the start of the text or right
 * after a lower-case word ("inÃ front" for "inà front"; not after capitals: "IRMÃ SILVA" is
 * Portuguese), and "Â " after sentence punctuation ("painting,Â global" for a no-break space).
 */
const SPACED_LEAD = /(?:^|[a-z]\s?)[\u00c2\u00c3] |[a-z.,?!]\u00c2 /;

/** Whether `text` holds a convincing mojibake sequence or a C1 control character. */
export function looksLikeMojibake(text: string): boolean {
  if (hasC1(text) || SPACED_LEAD.test(text)) return true;
  const chars = [...text];
  const bytes = chars.map((ch) => mojibakeByte(ch.codePointAt(0)!));
  for (let i = 0; i < bytes.length; i++) {
    const n = sequenceLength(bytes[i]!);
    if (n === 0 || i + n > bytes.length) continue;
    const seq = bytes.slice(i, i + n);
    if (seq.slice(1).every(isContinuation) && isConvincing(seq, chars[i - 1])) return true;
  }
  return false;
}

/** Bytes as a string of U+0000–U+00FF, so byte patterns can be matched with regular expressions. */
const asBinary = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
const fromBinary = (s: string): Uint8Array => Buffer.from(s, 'latin1');

/**
 * A space inside a UTF-8 sequence where the no-break-space byte A0 belongs (software that "fixed" A0
 * into a space before the text was decoded wrongly): the two-byte sequences whose A0 form is a likely
 * character, three-byte ones led by E0–E3, four-byte ones led by F0.
 */
const SPACE_FOR_A0 =
  /[\xc2\xc3\xc5\xce\xd0\xd9] |[\xe2\xe3] [\x80-\x84\x86-\x9f\xa1-\xbf]|[\xe0-\xe3][\x80-\x84\x86-\x9f\xa1-\xbf] |\xf0 [\x80-\xbf]{2}|\xf0[\x80-\xbf] [\x80-\xbf]|\xf0[\x80-\xbf]{2} /g;

/**
 * "Ã " alone is almost always the French/Portuguese word "à", whose no-break space merged with the
 * following space: keep a space after it. Portuguese "às" and "àquele/a/o(s)" are the exceptions.
 */
const A_GRAVE_WORD = /\xc3 (?! |quele|quela|quilo|s )/g;

function restoreNoBreakSpaces(bytes: Uint8Array): Uint8Array {
  let s = asBinary(bytes);
  SPACE_FOR_A0.lastIndex = 0;
  if (!SPACE_FOR_A0.test(s)) return bytes;
  s = s.replace(A_GRAVE_WORD, '\xc3\xa0 ').replace(SPACE_FOR_A0, (m) => m.replace(/ /g, '\xa0'));
  return fromBinary(s);
}

/**
 * UTF-8 sequences in which a byte was lost (written 0x1A, or a '?' in place of one byte) decode as one
 * U+FFFD instead of failing the whole text; a lone 0x1A is U+FFFD itself.
 */
const LOSSY_SEQUENCE =
  /[\xc2-\xdf]\x1a|[\xc2\xc3]\?|\xed[\xa0-\xaf][\x1a?]\xed[\xb0-\xbf][\x1a?\x80-\xbf]|\xed[\xa0-\xaf][\x1a?\x80-\xbf]\xed[\xb0-\xbf][\x1a?]|[\xe0-\xef][\x1a?][\x1a\x80-\xbf]|[\xe0-\xef][\x1a\x80-\xbf][\x1a?]|[\xf0-\xf4][\x1a?][\x1a\x80-\xbf]{2}|[\xf0-\xf4][\x1a\x80-\xbf][\x1a?][\x1a\x80-\xbf]|[\xf0-\xf4][\x1a\x80-\xbf]{2}[\x1a?]|\x1a/g;

function replaceLossySequences(bytes: Uint8Array): Uint8Array {
  return fromBinary(asBinary(bytes).replace(LOSSY_SEQUENCE, '\xef\xbf\xbd'));
}

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Strict UTF-8, plus the variants mojibake often carries: Java's C0 80 for NUL and CESU-8's surrogate
 * pairs (a lone encoded surrogate becomes U+FFFD). Undefined when the bytes are not UTF-8.
 */
function decodeUtf8(bytes: Uint8Array): string | undefined {
  let input = bytes;
  if (bytes.includes(0xed) || bytes.includes(0xc0)) {
    const s = asBinary(bytes)
      .replace(/\xc0\x80/g, '\x00')
      .replace(/\xed([\xa0-\xaf])([\x80-\xbf])\xed([\xb0-\xbf])([\x80-\xbf])/g, (_m, a: string, b: string, c: string, d: string) => {
        const hi = 0xd000 | ((a.charCodeAt(0) & 0x3f) << 6) | (b.charCodeAt(0) & 0x3f);
        const lo = 0xd000 | ((c.charCodeAt(0) & 0x3f) << 6) | (d.charCodeAt(0) & 0x3f);
        return asBinary(new TextEncoder().encode(String.fromCharCode(hi, lo)));
      })
      .replace(/\xed[\xa0-\xbf][\x80-\xbf]/g, '\xef\xbf\xbd');
    input = fromBinary(s);
  }
  try {
    return UTF8.decode(input);
  } catch {
    return undefined;
  }
}

/** One whole-text decode, as Latin-1 then as Windows-1252; undefined when neither gives UTF-8. */
function decodeWhole(text: string): string | undefined {
  for (const codec of CODECS) {
    let bytes = encode(text, codec);
    if (!bytes) continue;
    bytes = restoreNoBreakSpaces(bytes);
    if (codec.lossy) bytes = replaceLossySequences(bytes);
    const decoded = decodeUtf8(bytes);
    if (decoded !== undefined) return decoded;
  }
  return undefined;
}

/**
 * Runs of mojibake inside otherwise good text: consecutive UTF-8-shaped sequences of mojibake
 * characters (a space may stand for byte A0), not glued to a preceding character that would itself be
 * a continuation byte (then the run is part of a larger garble and left alone).
 */
function repairRuns(text: string): string {
  const chars = [...text];
  const byteAt = (i: number): number => {
    const ch = chars[i]!;
    return ch === ' ' ? 0xa0 : mojibakeByte(ch.codePointAt(0)!);
  };
  const strictContinuation = (i: number): boolean => chars[i] !== ' ' && isContinuation(byteAt(i)) && !WORD_FOLLOWING_PUNCTUATION.has(byteAt(i));
  const sequenceAt = (i: number): number => {
    if (i >= chars.length) return 0;
    const n = sequenceLength(mojibakeByte(chars[i]!.codePointAt(0)!));
    if (n === 0 || i + n > chars.length) return 0;
    for (let k = 1; k < n; k++) if (!isContinuation(byteAt(i + k))) return 0;
    return n;
  };
  let out = '';
  let i = 0;
  while (i < chars.length) {
    let end = i;
    let convincing = false;
    if (i === 0 || !strictContinuation(i - 1)) {
      for (let n = sequenceAt(end); n > 0; n = sequenceAt(end)) {
        convincing ||= isConvincing(Array.from({ length: n }, (_, k) => byteAt(end + k)), chars[end - 1]);
        end += n;
      }
    }
    if (end === i) {
      out += chars[i];
      i++;
      continue;
    }
    const run = chars.slice(i, end).join('');
    out += run.length < text.length && convincing ? fixMojibake(run) : run;
    i = end;
  }
  return out;
}

/** C1 control characters read as the Windows-1252 characters for the same bytes. */
export function fixC1Controls(text: string): string {
  return text.replace(/[\u0080-\u009f]/g, (c) => CP1252_C1[c.charCodeAt(0) - 0x80]!);
}

function repairOnce(text: string): string {
  if (!/[^\x00-\x7f]/.test(text) || !looksLikeMojibake(text)) return text;
  const whole = decodeWhole(text);
  if (whole !== undefined) return whole;
  const runs = repairRuns(text);
  if (runs !== text) return runs;
  return hasC1(text) ? fixC1Controls(text) : text;
}

/** `text` with mojibake repaired, repeatedly until it is stable (see the file comment). */
export function fixMojibake(text: string): string {
  for (;;) {
    const next = repairOnce(text);
    if (next === text) return text;
    text = next;
  }
}

import { fixC1Controls, fixMojibake } from './mojibake.js';
import { html5Entities, unescapeHtml } from './html-unescape.js';

/**
 * Text repair with the behaviour of ftfy's `fix_text` at its default settings, which open_clip applies
 * to every text before tokenizing. Each line (up to and including its '\n') is repaired on its own,
 * applying these fixes in turn until the line stops changing:
 *
 *  1. HTML character references that end in ';' are decoded — unless this line or an earlier one
 *     contains '<' (then the text is taken for HTML source and left as it is). All-capital forms of
 *     lower-case entity names are understood too ("P&EACUTE;REZ" → "PÉREZ").
 *  2. Mojibake is repaired (see mojibake.ts).
 *  3. C1 control characters become the Windows-1252 characters for the same bytes.
 *  4. Latin typographic ligatures and legacy digraphs are spelled out ("ﬁne" → "fine").
 *  5. Full-width and half-width forms become their ordinary forms ("ＡＢＣ" → "ABC"), the ideographic
 *     space a plain space.
 *  6. Curly quotes and apostrophes become straight ones.
 *  7. Line breaks (CR LF, CR, U+2028, U+2029, NEL) become '\n'.
 *  8. Unpaired surrogates become U+FFFD.
 *  9. ANSI terminal escape sequences are removed.
 * 10. Control characters that are never meant as text are removed (C0 controls other than tab, line
 *     feed, form feed and carriage return; DEL; the deprecated format controls U+206A–U+206F; the
 *     byte-order mark; the interlinear annotation and object replacement characters).
 * 11. The text is put in Unicode NFC.
 */

let strictEntities: Map<string, string> | undefined;

/**
 * "&name;" → characters for every HTML5 name written with its ';', plus the all-capital form of each
 * lower-case name when that form means nothing else to HTML (so "&EACUTE;" is É but "&AMP;" stays &).
 */
function strictEntityTable(): Map<string, string> {
  if (strictEntities) return strictEntities;
  const table = new Map<string, string>();
  for (const [name, value] of html5Entities()) {
    if (!name.endsWith(';')) continue;
    table.set(`&${name}`, value);
    if (name === name.toLowerCase()) {
      const upper = `&${name.toUpperCase()}`;
      if (unescapeHtml(upper) === upper) table.set(upper, value.toUpperCase());
    }
  }
  strictEntities = table;
  return table;
}

/** Step 1: only references terminated by ';', so "this&not that" keeps its "&not". */
export function unescapeTerminatedEntities(text: string): string {
  if (!text.includes('&')) return text;
  const table = strictEntityTable();
  return text.replace(/&#?[0-9A-Za-z]{1,24};/g, (ref) => {
    const named = table.get(ref);
    if (named !== undefined) return named;
    if (!ref.startsWith('&#')) return ref;
    const decoded = unescapeHtml(ref);
    // A reference that decodes only in part (its ';' survived) is not one.
    return decoded.includes(';') ? ref : decoded;
  });
}

/** Step 4: the Latin ligatures and digraphs that stand for letter sequences. */
const LIGATURES: Readonly<Record<string, string>> = {
  '\u0132': 'IJ', '\u0133': 'ij', '\u0149': '\u02bcn',
  '\u01c4': 'D\u017d', '\u01c5': 'D\u017e', '\u01c6': 'd\u017e',
  '\u01c7': 'LJ', '\u01c8': 'Lj', '\u01c9': 'lj',
  '\u01ca': 'NJ', '\u01cb': 'Nj', '\u01cc': 'nj',
  '\u01f1': 'DZ', '\u01f2': 'Dz', '\u01f3': 'dz',
  '\ufb00': 'ff', '\ufb01': 'fi', '\ufb02': 'fl', '\ufb03': 'ffi', '\ufb04': 'ffl', '\ufb05': '\u017ft', '\ufb06': 'st',
};

export function expandLatinLigatures(text: string): string {
  return text.replace(/[\u0132\u0133\u0149\u01c4-\u01cc\u01f1-\u01f3\ufb00-\ufb06]/g, (c) => LIGATURES[c]!);
}

/** Step 5: the halfwidth and fullwidth forms block (U+FF01–U+FFEF) through NFKC, and U+3000 → space. */
export function normalizeCharacterWidth(text: string): string {
  return text.replace(/[\u3000\uff01-\uffef]/g, (c) => (c === '\u3000' ? ' ' : c.normalize('NFKC')));
}

/** Step 6. */
export function uncurlQuotes(text: string): string {
  return text.replace(/[\u02bc\u2018-\u201b]/g, "'").replace(/[\u201c-\u201f]/g, '"');
}

/** Step 7. */
export function normalizeLineBreaks(text: string): string {
  return text.replace(/\r\n|[\r\u2028\u2029\u0085]/g, '\n');
}

/** Step 8. */
export function replaceLoneSurrogates(text: string): string {
  return text.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
}

/** Step 9: CSI sequences such as colour codes ("\x1b[36;44m"); any decimal digit counts as a digit. */
export function removeTerminalEscapes(text: string): string {
  return text.replace(/\x1b\[(?:\p{Nd}|;)*[a-zA-Z]/gu, '');
}

/** Step 10. */
export function removeControlCharacters(text: string): string {
  return text.replace(/[\x00-\x08\x0b\x0e-\x1f\x7f\u206a-\u206f\ufeff\ufff9-\ufffc]/g, '');
}

function fixLine(line: string, unescape: boolean): string {
  for (;;) {
    const before = line;
    if (unescape) line = unescapeTerminatedEntities(line);
    line = fixMojibake(line);
    line = fixC1Controls(line);
    line = expandLatinLigatures(line);
    line = normalizeCharacterWidth(line);
    line = uncurlQuotes(line);
    line = normalizeLineBreaks(line);
    line = replaceLoneSurrogates(line);
    line = removeTerminalEscapes(line);
    line = removeControlCharacters(line);
    line = line.normalize('NFC');
    if (line === before) return line;
  }
}

/** ftfy's `fix_text(text)` (see the file comment for what it does and mojibake.ts for what it does not). */
export function fixText(text: string): string {
  let unescape = true;
  let out = '';
  let start = 0;
  while (start < text.length) {
    const nl = text.indexOf('\n', start);
    const end = nl < 0 ? text.length : nl + 1;
    const line = text.slice(start, end);
    // Once a '<' has been seen the text is HTML source: later lines keep their entities too.
    if (line.includes('<')) unescape = false;
    out += fixLine(line, unescape);
    start = end;
  }
  return out;
}

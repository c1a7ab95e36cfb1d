import { Img2PromptError } from '../util/errors.js';

// ignoreBOM: a decoder that strips BOMs would silently eat a U+FEFF at the start of every chunk we decode,
// so the BOM is removed explicitly, and only at the start of the file.
const strictDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

const NEWLINE = 0x0a;

/**
 * Decode UTF-8 strictly. On invalid bytes, throws naming `file` and the line that holds them
 * (`firstLine` is the line number of `bytes[0]`, for callers decoding a file in pieces).
 */
export function decodeUtf8Strict(file: string, bytes: Uint8Array, firstLine = 1): string {
  try {
    return strictDecoder.decode(bytes);
  } catch {
    throw new Img2PromptError(file, `line ${firstInvalidLine(bytes, firstLine)}: invalid UTF-8 (save the file as UTF-8)`, { code: 'FILE_INVALID' });
  }
}

/** A newline byte never occurs inside a multi-byte UTF-8 sequence, so lines can be checked one by one. */
function firstInvalidLine(bytes: Uint8Array, firstLine: number): number {
  let line = firstLine;
  let start = 0;
  while (start <= bytes.length) {
    let end = bytes.indexOf(NEWLINE, start);
    if (end < 0) end = bytes.length;
    try {
      strictDecoder.decode(bytes.subarray(start, end));
    } catch {
      return line;
    }
    start = end + 1;
    line++;
  }
  return line;
}

/** Drop a leading byte-order mark (decoded as U+FEFF). */
export function stripBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

import { createReadStream } from 'node:fs';
import { Img2PromptError, readErrorReason } from '../util/errors.js';
import { decodeUtf8Strict, stripBom } from './utf8.js';

const NEWLINE = 0x0a;

/**
 * Call `onLine(text, lineNumber)` for every line of `file`, streaming, so a submission of millions of rows
 * never has to sit in memory as one string. Lines are numbered from 1; a trailing `\r` (CRLF files) and a
 * leading BOM are removed; invalid UTF-8 throws naming the line. A final newline does not make an extra
 * empty line. Returns the number of lines.
 */
export async function forEachLine(file: string, onLine: (text: string, line: number) => void): Promise<number> {
  let carry: Buffer = Buffer.alloc(0);
  let line = 0;
  const emit = (region: Uint8Array): void => {
    const text = decodeUtf8Strict(file, region, line + 1);
    let start = 0;
    for (;;) {
      const end = text.indexOf('\n', start);
      if (end < 0) break;
      emitOne(text.slice(start, end));
      start = end + 1;
    }
    if (start < text.length) emitOne(text.slice(start));
  };
  const emitOne = (raw: string): void => {
    line++;
    let text = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line === 1) text = stripBom(text);
    onLine(text, line);
  };

  const stream = createReadStream(file, { highWaterMark: 1 << 20 });
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      const bytes = carry.length > 0 ? Buffer.concat([carry, chunk]) : chunk;
      const lastNewline = bytes.lastIndexOf(NEWLINE);
      if (lastNewline < 0) {
        carry = bytes;
        continue;
      }
      // Decode only whole lines, so a multi-byte character split across chunks is never cut in two.
      emit(bytes.subarray(0, lastNewline + 1));
      carry = Buffer.from(bytes.subarray(lastNewline + 1));
    }
  } catch (err) {
    stream.destroy();
    if (err instanceof Img2PromptError) throw err;
    throw new Img2PromptError(file, `cannot read: ${readErrorReason(err)}`, { code: 'FILE_UNREADABLE', cause: err });
  }
  if (carry.length > 0) emit(carry);
  return line;
}

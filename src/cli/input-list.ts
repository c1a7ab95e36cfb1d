/**
 * `--from FILE`: inputs listed in a file, one path or URL a line (`-`: standard input), read as if they
 * were given on the command line. Blank lines and lines starting with `#` are skipped; surrounding
 * whitespace is trimmed. Relative paths are taken from the current folder, like those on the command
 * line, so `find images -name '*.png' > list.txt` gives a list that works from where it was made.
 */
import { promises as fs } from 'node:fs';
import { Img2PromptError } from '../util/errors.js';
import { readErrorReason } from '../submission/line-reader.js';

/** The inputs listed in `text`. */
export function parseInputList(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}

/** Reads the input list `file` (`-`: `stdin`), refusing, naming it, a list that cannot be read. */
export async function readInputList(file: string, stdin: NodeJS.ReadableStream): Promise<string[]> {
  let text: string;
  if (file === '-') {
    const chunks: Buffer[] = [];
    for await (const chunk of stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
    text = Buffer.concat(chunks).toString('utf8');
  } else {
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (err) {
      throw new Img2PromptError(file, `cannot read the input list (--from): ${readErrorReason(err)}`, { code: 'FILE_UNREADABLE', cause: err });
    }
  }
  return parseInputList(text);
}

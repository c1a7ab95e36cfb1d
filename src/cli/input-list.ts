/**
 * `--from FILE`: inputs listed in a file, one path or URL a line (`-`: standard input), read as if they
 * were given on the command line. Blank lines and lines starting with `#` are skipped; surrounding
 * whitespace is trimmed. Relative paths are taken from the current folder, like those on the command
 * line, so `find images -name '*.png' > list.txt` gives a list that works from where it was made.
 * The list is read line by line: a million lines cost one read buffer, not the file.
 */
import { promises as fs } from 'node:fs';
import readline from 'node:readline';
import { Img2PromptError, readErrorReason } from '../util/errors.js';

/** The input a line of the list names, or undefined for a blank line or a comment. */
function inputOfLine(line: string): string | undefined {
  const input = line.trim();
  return input === '' || input.startsWith('#') ? undefined : input;
}

/** The inputs listed in `text`. */
export function parseInputList(text: string): string[] {
  return text.split(/\r?\n/).map(inputOfLine).filter((x): x is string => x !== undefined);
}

/** The inputs of the list `file` (`-`: `stdin`) as they are read, refusing, naming it, a list that cannot be read. */
export async function* readInputList(file: string, stdin: NodeJS.ReadableStream): AsyncGenerator<string, void, undefined> {
  let stream: NodeJS.ReadableStream;
  if (file === '-') {
    stream = stdin;
  } else {
    // Opened first, so that a missing or unreadable list fails with its own message before any input.
    let fh: fs.FileHandle | undefined;
    try {
      fh = await fs.open(file, 'r');
      if ((await fh.stat()).isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    } catch (err) {
      await fh?.close();
      throw new Img2PromptError(file, `cannot read the input list (--from): ${readErrorReason(err)}`, { code: 'FILE_UNREADABLE', cause: err });
    }
    stream = fh.createReadStream();
  }
  const lines = readline.createInterface({ input: stream, crlfDelay: Infinity });
  try {
    for await (const line of lines) {
      const input = inputOfLine(line);
      if (input !== undefined) yield input;
    }
  } catch (err) {
    throw new Img2PromptError(file === '-' ? 'standard input' : file, `cannot read the input list (--from): ${readErrorReason(err)}`, { code: 'FILE_UNREADABLE', cause: err });
  } finally {
    lines.close();
  }
}

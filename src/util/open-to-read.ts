import fs from 'node:fs/promises';
import { Img2PromptError, readErrorReason } from './errors.js';

/**
 * Opens `file` for positional reads. A file that cannot be opened is that file's own error
 * (`FILE_UNREADABLE`, "cannot read the model: no such file") rather than Node's `ENOENT: ..., open '<path>'`,
 * which names the path a second time and the syscall instead of the cause.
 */
export async function openToRead(file: string, what?: string): Promise<fs.FileHandle> {
  try {
    return await fs.open(file, 'r');
  } catch (err) {
    throw new Img2PromptError(file, `cannot read${what === undefined ? '' : ` ${what}`}: ${readErrorReason(err)}`, { code: 'FILE_UNREADABLE', cause: err });
  }
}

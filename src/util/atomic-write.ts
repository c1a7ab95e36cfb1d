import { promises as fs } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Img2PromptError, errorMessage } from './errors.js';

/** Temp name next to the target, so the final rename never crosses file systems. */
export function tempPathFor(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/**
 * Write `target` through a temp file and a rename: readers see either the old file or the whole new
 * one, never a partial file. `produce` writes into the temp path; if it throws, the temp is removed.
 */
export async function writeAtomically(target: string, produce: (tempPath: string) => Promise<void>): Promise<void> {
  const tmp = tempPathFor(target);
  try {
    await produce(tmp);
    await fs.rename(tmp, target);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    if (err instanceof Img2PromptError) throw err;
    throw new Img2PromptError(target, `cannot write: ${errorMessage(err)}`, { cause: err });
  }
}

/** Atomic write of a whole buffer or string. */
export async function writeFileAtomic(target: string, data: string | Uint8Array): Promise<void> {
  await writeAtomically(target, (tmp) => fs.writeFile(tmp, data));
}

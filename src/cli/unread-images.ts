/**
 * How every command that reads images reports the ones it could not read: all of them in an errors file
 * (`path<TAB>reason` per line, `<output>.errors.txt` unless --errors names another), the first few on
 * stderr with a count, and exit code 1. A run with nothing unread removes an errors file left by an
 * earlier run, which would now be wrong.
 */
import { promises as fs } from 'node:fs';
import type { Command } from 'commander';
import { writeFileAtomic } from '../util/atomic-write.js';
import type { ImageFailure } from '../image/batch-loader.js';
import type { CliContext } from './context.js';
import { listLimited } from './list-limited.js';

/** Failures shown on stderr; the errors file has them all. */
const SHOWN = 10;

/** `--errors <file>`, for every command that reads images. */
export function addErrorsFileOption(cmd: Command): Command {
  return cmd.option('--errors <file>', 'where unreadable images are listed (path<TAB>reason) [default: <output>.errors.txt]');
}

/** The errors file of a run that writes `output`. */
export function errorsFileFor(opts: { output: string; errors?: string }): string {
  return opts.errors ?? `${opts.output}.errors.txt`;
}

export interface UnreadImages {
  errorsFile: string;
  /** Images that were read and failed to decode (or to be processed). */
  failures: readonly ImageFailure[];
  /** Images the run was given (failures among them). */
  total: number;
  /** What the output holds for a failed image, e.g. "they got the fallback vector", "they have no row". */
  consequence: string;
  /** Inputs named like images that are not regular files: never read (see input-images.ts). */
  skipped: readonly ImageFailure[];
}

/** Writes the errors file, or removes one an earlier run left (it would now be wrong). */
export async function writeErrorsFile(u: Pick<UnreadImages, 'errorsFile' | 'failures' | 'skipped'>): Promise<void> {
  const unread = [...u.skipped, ...u.failures];
  if (unread.length > 0) await writeFileAtomic(u.errorsFile, unread.map((f) => `${f.file}\t${f.reason.replace(/[\t\r\n]+/g, ' ')}\n`).join(''));
  else await fs.rm(u.errorsFile, { force: true });
}

/** When an image was not read, says so on stderr (a count, the first few, where the rest are) and fails the run. */
export function summarizeUnreadImages(cli: CliContext, u: UnreadImages): void {
  const list = (items: readonly ImageFailure[]) => listLimited(items.map((f) => `${f.file}: ${f.reason}`), items.length, SHOWN).join('\n') + '\n';
  if (u.failures.length > 0) {
    cli.err(`img2prompt: ${u.failures.length} of ${u.total} images could not be read; ${u.consequence} (listed in ${u.errorsFile}):\n`);
    cli.err(list(u.failures));
    cli.fail();
  }
  if (u.skipped.length > 0) {
    cli.err(`img2prompt: ${u.skipped.length} inputs named like images are not image files; they were not read and have no row (listed in ${u.errorsFile}):\n`);
    cli.err(list(u.skipped));
    cli.fail();
  }
}

/** writeErrorsFile, then summarizeUnreadImages: the end of a command that reads images. */
export async function reportUnreadImages(cli: CliContext, u: UnreadImages): Promise<void> {
  await writeErrorsFile(u);
  summarizeUnreadImages(cli, u);
}

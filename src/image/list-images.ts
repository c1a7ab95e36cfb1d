/**
 * Which files a command's inputs name as images: every command (and `validate --images`) lists them
 * here, so they agree on what counts as an image. In a folder that is each entry, not hidden, whose
 * extension is a readable format's (image-formats.ts) and that is a regular file or a link to one.
 * Entries with an image name that are anything else (a folder called x.png, a FIFO, a dangling link)
 * are not images: they are returned as `skipped`, with the reason, and never read.
 */
import { promises as fs, type Dirent } from 'node:fs';
import path from 'node:path';
import { Img2PromptError } from '../util/errors.js';
import type { ImageFailure } from './batch-loader.js';
import { hasImageExtension, type FormatOptions } from './image-formats.js';
import { classifyInput, fileErrorReason } from './input-file.js';
import { readOptions } from '../util/options.js';

export interface ImageInputs {
  /** The image files, in input order; a folder's in name order (by code unit, whatever the locale). */
  files: string[];
  /** Inputs that look like images by name (or were named explicitly) but are not regular files. */
  skipped: ImageFailure[];
}

/**
 * The images among `inputs`: a folder gives its image files (not recursive), a file is taken as it is
 * (whatever its extension: the decoder then says whether it is an image). An input that does not
 * exist at all is an error.
 */
export async function listImageFiles(inputs: readonly string[], options: FormatOptions = {}): Promise<ImageInputs> {
  const o = readOptions(options, 'listImageFiles()');
  options = { allowSvg: o.bool('allowSvg') };
  o.done();
  const files: string[] = [];
  const skipped: ImageFailure[] = [];
  for (const input of inputs) {
    const stats = await fs.stat(input).catch(() => undefined);
    if (stats?.isDirectory()) {
      const inFolder = await imageFilesInFolder(input, options);
      files.push(...inFolder.files);
      skipped.push(...inFolder.skipped);
      continue;
    }
    if (!stats && !(await fs.lstat(input).catch(() => undefined))) throw new Img2PromptError(input, 'not found', { code: 'FILE_UNREADABLE' });
    const kind = await classifyInput(input);
    if (kind.file) files.push(input);
    else skipped.push({ file: input, reason: kind.reason });
  }
  return { files, skipped };
}

/** The images of folder `dir` (see the module comment); an unreadable folder is an error. */
export async function imageFilesInFolder(dir: string, options: FormatOptions = {}): Promise<ImageInputs> {
  let entries: Dirent[];
  try {
    entries = await fs.readdir(dir, { withFileTypes: true });
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOTDIR' ? 'not a directory' : await fileErrorReason(dir, err);
    throw new Img2PromptError(dir, `cannot list images: ${reason}`, { code: 'FILE_UNREADABLE', cause: err });
  }
  const files: string[] = [];
  const skipped: ImageFailure[] = [];
  const names = entries.filter((e) => !e.name.startsWith('.') && hasImageExtension(e.name, options));
  names.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of names) {
    const file = path.join(dir, entry.name);
    // readdir already knows a plain file; anything else (links included) is judged by stat.
    const kind = entry.isFile() ? { file: true as const } : await classifyInput(file);
    if (kind.file) files.push(file);
    else skipped.push({ file, reason: kind.reason });
  }
  return { files, skipped };
}

/**
 * Which files a command's inputs name as images: every command (and `validate --images`) lists them
 * here, so they agree on what counts as an image. In a folder that is each entry, not hidden, whose
 * extension is a readable format's (image-formats.ts) and that is a regular file or a link to one.
 * Entries with an image name that are anything else (a folder called x.png, a FIFO, a dangling link)
 * are not images: they are returned as `skipped`, with the reason, and never read.
 */
import { promises as fs, type Dir } from 'node:fs';
import path from 'node:path';
import { Img2PromptError } from '../util/errors.js';
import type { ImageFailure } from './batch-loader.js';
import { hasImageExtension, type FormatOptions } from './image-formats.js';
import { classifyInput, fileErrorReason, notRegularReason } from './input-file.js';
import { readOptions } from '../util/options.js';
import { externalSort } from '../util/external-sort.js';

export interface ImageInputs {
  /** The image files, in input order; a folder's in name order (by code unit, whatever the locale). */
  files: string[];
  /** Inputs that look like images by name (or were named explicitly) but are not regular files. */
  skipped: ImageFailure[];
}

/** One listed input: an image file, or (with `reason`) one that looks like an image but is not a regular file. */
export interface ListedImage {
  file: string;
  /** Why the file is skipped; absent for an image. */
  reason?: string;
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
  return collect(eachImageOfInputs(inputs, options), { files: [], skipped: [] });
}

/** Adds what `listed` gives to `into`: images to `files`, the rest to `skipped`. */
async function collect(listed: AsyncIterable<ListedImage>, into: ImageInputs): Promise<ImageInputs> {
  for await (const { file, reason } of listed) {
    if (reason === undefined) into.files.push(file);
    else into.skipped.push({ file, reason });
  }
  return into;
}

/**
 * Named inputs whose stat runs at once. A `--from` list names a million files one after another: one
 * stat at a time spent ~100 µs each waiting on the thread pool (100 s for a million); a window keeps
 * the pool busy while the answers are still taken in order.
 */
const STAT_WINDOW = 64;

/** One named input judged from a single stat: a folder to list, an image, or an input that is not there. */
type NamedInput = { folder: true } | { folder: false; listed: ListedImage } | { folder: false; missing: true };

/** What `input` is; never rejects (its answer may wait in the window while others are taken). */
async function inspectInput(input: string): Promise<NamedInput> {
  try {
    const stats = await fs.stat(input);
    if (stats.isDirectory()) return { folder: true };
    const reason = notRegularReason(stats);
    return { folder: false, listed: reason === undefined ? { file: input } : { file: input, reason } };
  } catch (err) {
    // stat follows links: an input that is itself there (a dangling link, a link loop) is skipped with
    // its reason; one that is not there at all is the caller's mistake.
    if (!(await fs.lstat(input).catch(() => undefined))) return { folder: false, missing: true };
    return { folder: false, listed: { file: input, reason: await fileErrorReason(input, err) } };
  }
}

/**
 * The images of `inputs`, in input order, one at a time: a folder's in name order, read and sorted in
 * bounded memory (externalSort), so neither a folder of millions of images nor a list of millions of
 * files is held. Inputs for which `asIs` is true (URLs) are passed on unchecked. Up to STAT_WINDOW
 * inputs are stat'd ahead of the one being yielded.
 */
export async function* eachImageOfInputs(
  inputs: Iterable<string> | AsyncIterable<string>, options: FormatOptions = {}, asIs: (input: string) => boolean = () => false,
): AsyncGenerator<ListedImage, void, undefined> {
  const source: AsyncIterator<string> = Symbol.asyncIterator in inputs
    ? inputs[Symbol.asyncIterator]()
    : (async function* () { yield* inputs; })();
  // The inputs read and stat'd ahead, oldest first; a URL's kind is undefined (taken as it is).
  const window: { input: string; kind: Promise<NamedInput> | undefined }[] = [];
  let ended = false;
  try {
    for (;;) {
      while (!ended && window.length < STAT_WINDOW) {
        const next = await source.next();
        if (next.done) ended = true;
        else window.push({ input: next.value, kind: asIs(next.value) ? undefined : inspectInput(next.value) });
      }
      const head = window.shift();
      if (head === undefined) return;
      const judged = head.kind === undefined ? undefined : await head.kind;
      if (judged === undefined) yield { file: head.input };
      else if (judged.folder) yield* eachImageInFolder(head.input, options);
      else if ('missing' in judged) throw new Img2PromptError(head.input, 'not found', { code: 'FILE_UNREADABLE' });
      else yield judged.listed;
    }
  } finally {
    if (!ended) await source.return?.();
  }
}

/** The images of folder `dir` (see the module comment); an unreadable folder is an error. */
export function imageFilesInFolder(dir: string, options: FormatOptions = {}): Promise<ImageInputs> {
  return collect(eachImageInFolder(dir, options), { files: [], skipped: [] });
}

/** A folder entry with an image name, as externalSort keeps it: the name and whether readdir knew it for a plain file. */
type Entry = [name: string, plainFile: 0 | 1];

async function* eachImageInFolder(dir: string, options: FormatOptions): AsyncGenerator<ListedImage, void, undefined> {
  const cannotList = async (err: unknown): Promise<never> => {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOTDIR' ? 'not a directory' : await fileErrorReason(dir, err);
    throw new Img2PromptError(dir, `cannot list images: ${reason}`, { code: 'FILE_UNREADABLE', cause: err });
  };
  let folder: Dir;
  try {
    folder = await fs.opendir(dir, { bufferSize: 256 });
  } catch (err) {
    return await cannotList(err);
  }
  async function* entries(): AsyncGenerator<Entry, void, undefined> {
    try {
      for await (const entry of folder) {
        if (!entry.name.startsWith('.') && hasImageExtension(entry.name, options)) yield [entry.name, entry.isFile() ? 1 : 0];
      }
    } catch (err) {
      await cannotList(err);
    }
  }
  for await (const [name, plainFile] of externalSort(entries(), (e) => e[0])) {
    const file = path.join(dir, name);
    // readdir already knows a plain file; anything else (links included) is judged by stat.
    const kind = plainFile ? { file: true as const } : await classifyInput(file);
    yield kind.file ? { file } : { file, reason: kind.reason };
  }
}

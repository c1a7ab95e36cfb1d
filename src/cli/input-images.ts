/**
 * The images a command works on, from its `[inputs...]`, `--from` list, `--shard` and `--allow-svg`: the
 * same listing and the same id rule for predict, interrogate, embed-images, caption and fit-weights
 * (validate --images uses the same two pieces, see submission/validate.ts), checked before any model is
 * opened. An input is a file, a folder (its images) or an `http(s)://` URL (downloaded later, see
 * url-inputs.ts; its id is the last path segment without the extension).
 *
 * The listing goes to a list file (image/image-list-file.ts) as it is read, and the ids are checked
 * with a table of their hashes, so a `--from` list of a million images costs megabytes, not the
 * hundreds a list of strings would; the ids whose hash came twice are read back and compared as
 * strings, so a clash is reported exactly as before (both files named).
 */
import { Img2PromptError } from '../util/errors.js';
import type { ImageFailure } from '../image/batch-loader.js';
import { eachImageOfInputs } from '../image/list-images.js';
import { describeSharedId, imageIdOf, sharedIds } from '../image/image-id.js';
import { ImageListFile } from '../image/image-list-file.js';
import { isImageUrl, urlImageId } from '../image/url-fetch.js';
import { fileIdProblem, imageIdsError, LISTED_ID_PROBLEMS } from '../submission/img-id.js';
import { inShard, parseShard, shardOf, type Shard } from '../submission/shard.js';
import { IdHashTable } from '../util/id-hash-table.js';
import { readInputList } from './input-list.js';

export interface CommandImages {
  /** Image files to read and image URLs to fetch, in input order. */
  files: string[];
  /** Their ids (file names without extension), checked by submissionImageIds. */
  ids: string[];
  /** Inputs named like images that are not regular files: never read, reported as failures. */
  skipped: ImageFailure[];
  /** With --shard: every image of the run, the shard's and the others', in input order. */
  unsharded?: { files: string[]; ids: string[] };
}

/** CommandImages kept in list files: what the commands that stream their images take. */
export interface CommandImageList {
  /** The images (the shard's, with --shard) in input order; ids unique and usable as Kaggle ids. */
  list: ImageListFile;
  skipped: ImageFailure[];
  /** With --shard: every image of the run, the shard's and the others', in input order. */
  unsharded?: ImageListFile;
  /** Closes the list files (they vanish with their handles). */
  close(): Promise<void>;
}

export interface ImageInputCliOptions {
  allowSvg?: boolean;
  /** --from: a file listing inputs, one a line (`-`: standard input). */
  from?: string;
  /** --shard I/N: only the images of this shard. */
  shard?: string;
}

/** The id of an input: a URL's last path segment or a file's name, without the extension. */
export function inputImageId(input: string): string {
  return isImageUrl(input) ? urlImageId(input) : imageIdOf(input);
}

/** Inputs named in the "no image files found" error; the rest are counted. */
const NAMED_INPUTS = 20;

/**
 * Lists the images of `inputs` and of the `--from` list (after them), checks their ids (unique, usable
 * as Kaggle ids) over all of them, refusing with one error that lists every offending input, and then
 * keeps the `--shard`'s part, in blocks of `shardBlock` images (the command's batch size, so a shard's
 * batches are those of an unsharded run). Throws when there is no image at all (or none in the shard).
 */
export async function commandImageList(
  inputs: readonly string[], options: ImageInputCliOptions, more: { shardBlock?: number; stdin?: NodeJS.ReadableStream } = {},
): Promise<CommandImageList> {
  const stdin = more.stdin ?? process.stdin;
  const shard = options.shard === undefined ? undefined : parseShard(options.shard);
  const all = await ImageListFile.create(inputImageId);
  let shardList: ImageListFile | undefined;
  try {
    const skipped: ImageFailure[] = [];
    const named: string[] = [];
    let given = 0;
    const seen = new IdHashTable();
    const twice = new Set<string>();
    const problems: string[] = [];
    let problemCount = 0;
    const add = async (file: string) => {
      const id = inputImageId(file);
      const problem = fileIdProblem(file, id);
      if (problem && problemCount++ < LISTED_ID_PROBLEMS) problems.push(problem);
      if (seen.set(id)) twice.add(id);
      await all.add(file);
    };
    const sources = options.from === undefined ? inputs : concat(inputs, readInputList(options.from, stdin));
    async function* counted(): AsyncGenerator<string, void, undefined> {
      for await (const input of sources) {
        if (given++ < NAMED_INPUTS) named.push(input);
        yield input;
      }
    }
    // A folder streams in name order (sorted in bounded memory): a folder of millions is never held.
    // URLs are taken as they are (fetched later); files are stat'd a window at a time, in order.
    for await (const listed of eachImageOfInputs(counted(), { allowSvg: options.allowSvg }, isImageUrl)) {
      if (listed.reason === undefined) await add(listed.file);
      else skipped.push({ file: listed.file, reason: listed.reason });
    }
    await all.seal();
    // Every id is in; clashes are in `twice`. The table's memory goes back now, not at some later GC.
    seen.release();
    if (given === 0) {
      if (options.from === undefined) throw new Img2PromptError(undefined, 'no inputs: give image files, folders or URLs, or --from FILE');
      throw new Img2PromptError(options.from === '-' ? 'standard input' : options.from, 'the input list (--from) names no input');
    }
    if (all.length === 0) {
      const why = skipped.length > 0 ? ` (${skipped.map((s) => `${s.file}: ${s.reason}`).join('; ')})` : '';
      const names = named.join(' ') + (given > named.length ? ` ... and ${given - named.length} more` : '');
      throw new Img2PromptError(names, `no image files found${why}`);
    }
    // Checked over every input, not the shard's: a clash is refused on every machine alike.
    if (twice.size > 0) {
      const shared = sharedIds(await filesWithIds(all, twice), inputImageId).map(describeSharedId);
      problems.push(...shared.slice(0, Math.max(0, LISTED_ID_PROBLEMS - problems.length)));
      problemCount += shared.length;
    }
    if (problemCount > 0) throw imageIdsError(problems, problemCount);
    if (!shard) return { list: all, skipped, close: () => all.close() };
    shardList = await keepShard(all, shard, more.shardBlock ?? 1);
    const kept = shardList;
    return { list: kept, skipped: skipped.filter((s) => inShard(imageIdOf(s.file), shard)), unsharded: all, close: async () => { await kept.close(); await all.close(); } };
  } catch (err) {
    await shardList?.close();
    await all.close();
    throw err;
  }
}

/** commandImageList with the images in arrays, for the commands that take a few thousand images at most. */
export async function commandImages(
  inputs: readonly string[], options: ImageInputCliOptions, more: { shardBlock?: number; stdin?: NodeJS.ReadableStream } = {},
): Promise<CommandImages> {
  const listed = await commandImageList(inputs, options, more);
  try {
    const arrays = async (list: ImageListFile) => {
      const files = await list.sources(0, list.length);
      return { files, ids: files.map(inputImageId) };
    };
    const { files, ids } = await arrays(listed.list);
    return { files, ids, skipped: listed.skipped, ...(listed.unsharded ? { unsharded: await arrays(listed.unsharded) } : {}) };
  } finally {
    await listed.close();
  }
}

async function* concat(first: readonly string[], rest: AsyncIterable<string>): AsyncGenerator<string, void, undefined> {
  yield* first;
  yield* rest;
}

/** The files of `list` whose id is one of `ids`, in list order. */
async function filesWithIds(list: ImageListFile, ids: ReadonlySet<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const file of list) if (ids.has(inputImageId(file))) out.push(file);
  return out;
}

/** The shard's images: blocks of `block` consecutive images (see submission/shard.ts). */
async function keepShard(all: ImageListFile, shard: Shard, block: number): Promise<ImageListFile> {
  if (!Number.isSafeInteger(block) || block < 1) throw new RangeError(`shard block must be a positive integer, got ${block}`);
  const kept = await ImageListFile.create(inputImageId);
  try {
    let i = 0;
    let keep = false;
    for await (const file of all) {
      if (i++ % block === 0) keep = shardOf(inputImageId(file), shard.count) === shard.index;
      if (keep) await kept.add(file);
    }
    await kept.seal();
    if (kept.length === 0) {
      throw new Img2PromptError(undefined, `shard ${shard.index}/${shard.count} holds none of the ${all.length} images (too few images for ${shard.count} shards?)`);
    }
  } catch (err) {
    await kept.close();
    throw err;
  }
  return kept;
}

/**
 * The images a command works on, from its `[inputs...]`, `--from` list, `--shard` and `--allow-svg`: the
 * same listing and the same id rule for predict, interrogate, embed-images, caption and fit-weights
 * (validate --images uses the same two pieces, see submission/validate.ts), checked before any model is
 * opened. An input is a file, a folder (its images) or an `http(s)://` URL (downloaded later, see
 * url-inputs.ts; its id is the last path segment without the extension).
 */
import { Img2PromptError } from '../util/errors.js';
import type { ImageFailure } from '../image/batch-loader.js';
import { listImageFiles } from '../image/list-images.js';
import { imageIdOf } from '../image/image-id.js';
import { isImageUrl, urlImageId } from '../image/url-fetch.js';
import { submissionImageIds } from '../submission/img-id.js';
import { inShard, parseShard, shardMembership, type Shard } from '../submission/shard.js';
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

/**
 * Lists the images of `inputs` and of the `--from` list (after them), checks their ids (unique, usable
 * as Kaggle ids) over all of them, refusing with one error that lists every offending input, and then
 * keeps the `--shard`'s part, in blocks of `shardBlock` images (the command's batch size, so a shard's
 * batches are those of an unsharded run). Throws when there is no image at all (or none in the shard).
 */
export async function commandImages(
  inputs: readonly string[], options: ImageInputCliOptions, more: { shardBlock?: number; stdin?: NodeJS.ReadableStream } = {},
): Promise<CommandImages> {
  const stdin = more.stdin ?? process.stdin;
  const shard = options.shard === undefined ? undefined : parseShard(options.shard);
  const all = [...inputs, ...(options.from === undefined ? [] : await readInputList(options.from, stdin))];
  if (all.length === 0) {
    if (options.from === undefined) throw new Img2PromptError(undefined, 'no inputs: give image files, folders or URLs, or --from FILE');
    throw new Img2PromptError(options.from === '-' ? 'standard input' : options.from, 'the input list (--from) names no input');
  }
  let files: string[] = [];
  let skipped: ImageFailure[] = [];
  // URLs are kept in their place among the files; runs of local inputs are listed together.
  let local: string[] = [];
  const flush = async () => {
    if (local.length === 0) return;
    const listed = await listImageFiles(local, { allowSvg: options.allowSvg });
    files.push(...listed.files);
    skipped.push(...listed.skipped);
    local = [];
  };
  for (const input of all) {
    if (!isImageUrl(input)) {
      local.push(input);
      continue;
    }
    await flush();
    files.push(input);
  }
  await flush();
  if (files.length === 0) {
    const why = skipped.length > 0 ? ` (${skipped.map((s) => `${s.file}: ${s.reason}`).join('; ')})` : '';
    throw new Img2PromptError(all.join(' '), `no image files found${why}`);
  }
  // Checked over every input, not the shard's: a clash is refused on every machine alike.
  let ids = submissionImageIds(files, inputImageId);
  if (!shard) return { files, ids, skipped };
  return { ...keepShard(files, ids, skipped, shard, more.shardBlock ?? 1), unsharded: { files, ids } };
}

/** The shard's images: blocks of `block` consecutive images (see submission/shard.ts); a skipped input goes by its own id. */
function keepShard(files: string[], ids: string[], skipped: ImageFailure[], shard: Shard, block: number): CommandImages {
  const keep = shardMembership(ids, shard, block);
  const kept = { files: files.filter((_, i) => keep[i]), ids: ids.filter((_, i) => keep[i]), skipped: skipped.filter((s) => inShard(imageIdOf(s.file), shard)) };
  if (kept.files.length === 0) {
    throw new Img2PromptError(undefined, `shard ${shard.index}/${shard.count} holds none of the ${files.length} images (too few images for ${shard.count} shards?)`);
  }
  return kept;
}

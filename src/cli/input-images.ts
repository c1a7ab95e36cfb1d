/**
 * The images a command works on, from its `<inputs...>` and `--allow-svg`: the same listing and the same
 * id rule for predict, interrogate, embed-images and fit-weights (validate --images uses the same two
 * pieces, see submission/validate.ts), checked before any model is opened.
 */
import { Img2PromptError } from '../util/errors.js';
import type { ImageFailure } from '../image/batch-loader.js';
import { listImageFiles } from '../image/list-images.js';
import { submissionImageIds } from '../submission/img-id.js';

export interface CommandImages {
  /** Image files to read, in input order. */
  files: string[];
  /** Their ids (file names without extension), checked by submissionImageIds. */
  ids: string[];
  /** Inputs named like images that are not regular files: never read, reported as failures. */
  skipped: ImageFailure[];
}

export interface ImageInputCliOptions {
  allowSvg?: boolean;
}

/**
 * Lists the images of `inputs` and checks their ids (unique, usable as Kaggle ids), refusing with one
 * error that lists every offending file. Throws when there is no image at all.
 */
export async function commandImages(inputs: readonly string[], options: ImageInputCliOptions): Promise<CommandImages> {
  const { files, skipped } = await listImageFiles(inputs, { allowSvg: options.allowSvg });
  if (files.length === 0) {
    const why = skipped.length > 0 ? ` (${skipped.map((s) => `${s.file}: ${s.reason}`).join('; ')})` : '';
    throw new Img2PromptError(inputs.join(' '), `no image files found${why}`);
  }
  return { files, ids: submissionImageIds(files), skipped };
}

/**
 * The images of `--images DIR` that have a prompt in `--truth prompts.csv`, for the commands that
 * learn from or score against known prompts (fit-head, eval): listed and checked before any model is
 * opened, with the images lacking a prompt reported and left out.
 */
import { Img2PromptError } from '../util/errors.js';
import { readPromptsCsv } from '../submission/prompts-csv.js';
import { commandImages, type ImageInputCliOptions } from './input-images.js';
import type { CliContext } from './context.js';

export interface LabelledImages {
  /** Image files with a known prompt, in listing order. */
  files: string[];
  ids: string[];
  /** Image id → its true prompt. */
  truthOf: Map<string, string>;
}

/**
 * Lists `imagesDir`, keeps the images named in `truthFile`, and refuses fewer than `minimum` of them
 * (`why`: what needs that many, for the message).
 */
export async function labelledImages(
  cli: CliContext, imagesDir: string, truthFile: string, options: ImageInputCliOptions, minimum: number, why: string, consequence = 'left out',
): Promise<LabelledImages> {
  const truthRows = await readPromptsCsv(truthFile);
  const truthOf = new Map(truthRows.map((r) => [r.imgId, r.prompt]));
  const all = await commandImages([imagesDir], options);
  for (const s of all.skipped) cli.err(`img2prompt: ${s.file}: ${s.reason} (${consequence})\n`);
  const keep = all.ids.map((id) => truthOf.has(id));
  const files = all.files.filter((_, i) => keep[i]);
  const ids = all.ids.filter((_, i) => keep[i]);
  if (all.files.length > files.length) cli.err(`${all.files.length - files.length} of ${all.files.length} images have no prompt in ${truthFile}; they are ${consequence}\n`);
  if (files.length < minimum) {
    throw new Img2PromptError(truthFile, `${files.length} image${files.length === 1 ? '' : 's'} in ${imagesDir} with a known prompt are too few for ${why}: need at least ${minimum}`);
  }
  return { files, ids, truthOf };
}

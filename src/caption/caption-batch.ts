/**
 * Captions for the images of one CLIP batch, for the engines that put a caption in front of a prompt
 * (interrogate) or embed it (predict's captioner member). The captioner decodes the images again with
 * its own preprocessing (BLIP: the whole image to 384×384), in one batch: decoding is small next to
 * beam search. An image the captioner cannot read (CLIP could) gets no caption rather than failing.
 */
import type { ExifMode } from '../image/decode.js';
import type { ImageInput } from '../image/image-input.js';
import type { Captioner, CaptionOptions } from './captioner.js';

export interface BatchCaptionOptions {
  caption?: CaptionOptions;
  allowSvg?: boolean;
  exif?: ExifMode;
}

/** One caption per input (undefined where the captioner could not read it), in input order. */
export async function captionBatch(captioner: Captioner, inputs: readonly ImageInput[], options: BatchCaptionOptions): Promise<(string | undefined)[]> {
  const out = new Array<string | undefined>(inputs.length).fill(undefined);
  if (inputs.length === 0) return out;
  const run = captioner.run(inputs, { ...options.caption, batchSize: inputs.length, allowSvg: options.allowSvg, exif: options.exif });
  for await (const r of run) if (r.failure === undefined) out[r.index] = r.caption;
  return out;
}

import { Option, type Command } from 'commander';
import { EXIF_MODES, type ExifMode } from '../image/decode.js';
import { CLIP_IMAGE_PROCESSORS, type ClipImageProcessor } from '../image/image-processor.js';

/** How the commands that read images decode and preprocess them. */
export interface ImageCliOptions {
  exif: ExifMode;
  imageProcessor?: ClipImageProcessor;
}

/** Adds --exif and --image-processor to a command that reads images. */
export function addImageOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option('--exif <mode>', 'apply: turn photos upright by their EXIF orientation; ignore: keep the stored pixels, as open_clip, transformers and the CLIP Interrogator do')
        .choices([...EXIF_MODES])
        .default('apply'),
    )
    .addOption(
      new Option('--image-processor <name>', "preprocess images as open_clip or transformers (hf) does [default: the checkpoint's own, by its layout]")
        .choices([...CLIP_IMAGE_PROCESSORS]),
    );
}

import { Img2PromptError } from '../util/errors.js';
import type { NativeClipRules, PillowPassOrder } from '../native/addon.js';
import type { PilModeFamily } from './pil-mode.js';

/**
 * Which reference pipeline an image is preprocessed like, so that a checkpoint sees the pixels it was
 * published with:
 * - 'open_clip': open_clip's (and OpenAI CLIP's) eval transform on a PIL image: Resize(N, BICUBIC) in the
 *   image's own PIL mode, CenterCrop(N) (offset rounded half to even), convert('RGB'), ToTensor, Normalize.
 * - 'hf': transformers' CLIPImageProcessor (5.x, torchvision backend): convert_to_rgb (transparent pixels
 *   composited onto white), torch's antialiased uint8 bicubic resize, center_crop (offset truncated, one
 *   pixel left of or above open_clip's when (len - N) / 2 ends in .5 with an odd integer part), then
 *   (u - 255 mean) / (255 std).
 * - 'hf-pil': the same processor on transformers' PIL backend (CLIPImageProcessorPil, and transformers 4's
 *   default): convert_to_rgb, Pillow's bicubic resize in RGB, center_crop (offset truncated), ToTensor-style
 *   normalisation. GIT's processor.
 * - 'hf-pil-resize': BlipImageProcessorPil: the same, but the whole image resized to N×N, nothing cropped.
 */
export type ClipImageProcessor = 'open_clip' | 'hf' | 'hf-pil' | 'hf-pil-resize';
export const CLIP_IMAGE_PROCESSORS: readonly ClipImageProcessor[] = ['open_clip', 'hf', 'hf-pil', 'hf-pil-resize'];

// The native kernel's rules and pass orders cross the addon boundary, so they are declared with it.
export type { NativeClipRules, PillowPassOrder };
export const PILLOW_PASS_ORDERS: readonly PillowPassOrder[] = ['pillow13', 'pillow12.2', 'pillow12.1'];

/** What a decoded image tells the rules: its channels (4 = it has transparency) and its PIL mode. */
export interface ImageKind {
  channels: 3 | 4;
  pilMode: PilModeFamily;
}

/** The native rules with which `processor` treats an image of `kind`. */
export function clipRules(processor: ClipImageProcessor, kind: ImageKind, passOrder: PillowPassOrder = 'pillow13'): NativeClipRules {
  if (processor === 'hf') {
    return { channels: kind.channels, resampler: 'torch-bicubic', passOrder, crop: 'floor', alpha: 'onto-white', normalisation: 'fused' };
  }
  if (processor === 'hf-pil' || processor === 'hf-pil-resize') {
    // convert_to_rgb runs first, so Pillow always resizes RGB (a palette image is expanded, not resized nearest).
    const crop = processor === 'hf-pil' ? 'floor' : 'none';
    return { channels: kind.channels, resampler: 'pillow-bicubic', passOrder, crop, alpha: 'onto-white', normalisation: 'to-tensor' };
  }
  return {
    channels: kind.channels,
    resampler: kind.pilMode === 'P' ? 'pillow-nearest' : 'pillow-bicubic',
    passOrder,
    crop: 'half-to-even',
    alpha: kind.pilMode === 'RGBA' ? 'premultiplied' : 'drop',
    normalisation: 'to-tensor',
  };
}

/** `value` as a processor name, or an error naming the option and the choices. */
export function checkImageProcessor(value: unknown, option = 'imageProcessor'): ClipImageProcessor {
  if (CLIP_IMAGE_PROCESSORS.includes(value as ClipImageProcessor)) return value as ClipImageProcessor;
  const names = CLIP_IMAGE_PROCESSORS.map((p) => `"${p}"`);
  throw new Img2PromptError(undefined, `${option} must be ${names.slice(0, -1).join(', ')} or ${names.at(-1)}, got ${JSON.stringify(value)}`);
}

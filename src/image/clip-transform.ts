import { native } from '../native/addon.js';
import type { DecodedImage } from './decode.js';

/** OpenAI CLIP's normalisation (also used by open_clip's OpenAI and LAION checkpoints). */
export const OPENAI_CLIP_MEAN: readonly [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
export const OPENAI_CLIP_STD: readonly [number, number, number] = [0.26862954, 0.26130258, 0.27577711];

/**
 * Which Pillow's pass order to reproduce (see native/clip_preprocess.h). 'pillow13' is the current
 * release; 'pillow12.1' is the order of every Pillow that CLIP models were trained with. They differ
 * only for images whose height shrinks much more than their width, by about one level at a few pixels.
 */
export type PillowPassOrder = 'pillow13' | 'pillow12.2' | 'pillow12.1';
const PASS_ORDERS: readonly PillowPassOrder[] = ['pillow13', 'pillow12.2', 'pillow12.1'];

/** Where torchvision's Resize(N) + CenterCrop(N) put an image. */
export interface ClipGeometry {
  resizedWidth: number;
  resizedHeight: number;
  left: number;
  top: number;
}

interface ClipAddon {
  clipPreprocess(
    rgb: Uint8Array, width: number, height: number, size: number, mean: Float32Array, std: Float32Array,
    out: Float32Array, slot: number, passOrder?: PillowPassOrder,
  ): Promise<void>;
  clipGeometry(width: number, height: number, size: number): ClipGeometry;
}

const MAX_SIDE = 2 ** 24;
const MAX_SIZE = 8192;

function clipAddon(): ClipAddon {
  const addon = native() as unknown as Partial<ClipAddon>;
  if (typeof addon.clipPreprocess !== 'function' || typeof addon.clipGeometry !== 'function') {
    throw new Error('the native addon has no clipPreprocess: rebuild it with `npm run build:native`');
  }
  return addon as ClipAddon;
}

function invalid(name: string, expected: string, value: unknown): TypeError {
  const shown = ArrayBuffer.isView(value) ? `${value.constructor.name}(${(value as Uint8Array).length})` : String(value);
  return new TypeError(`Expected ${expected} for ${name} but received ${shown} of type ${typeof value}`);
}

function checkInteger(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalid(name, `an integer between ${min} and ${max}`, value);
  }
  return value;
}

function checkTriple(name: string, value: unknown, positive: boolean): Float32Array {
  if (!(value instanceof Float32Array) || value.length !== 3) throw invalid(name, 'a Float32Array of 3 values (R, G, B)', value);
  for (const v of value) {
    if (!Number.isFinite(v) || (positive && !(v > 0))) {
      throw invalid(name, positive ? 'finite positive values' : 'finite values', value);
    }
  }
  return value;
}

/**
 * CLIP preprocessing of one decoded image, as open_clip / HF CLIPImageProcessor do on a PIL image
 * (Resize(size, BICUBIC) → CenterCrop(size) → ToTensor → Normalize), written as float32 planes
 * [3, size, size] into slot `slot` of `out` ([B, 3, size, size]). The resize is Pillow's, bit for bit.
 *
 * Runs on the libuv thread pool, reading `rgb` and writing `out` in place (no copies): leave both
 * untouched until the promise settles. Bad arguments throw at once (TypeError), sharp-style.
 */
export function clipPreprocess(
  rgb: Uint8Array, width: number, height: number, size: number, mean: Float32Array, std: Float32Array,
  out: Float32Array, slot: number, options: { passOrder?: PillowPassOrder } = {},
): Promise<void> {
  if (!(rgb instanceof Uint8Array)) throw invalid('rgb', 'a Uint8Array of RGB8 pixels (HWC)', rgb);
  checkInteger('width', width, 1, MAX_SIDE);
  checkInteger('height', height, 1, MAX_SIDE);
  checkInteger('size', size, 1, MAX_SIZE);
  if (rgb.length !== width * height * 3) {
    throw invalid('rgb', `${width * height * 3} bytes (${width}x${height}x3)`, rgb);
  }
  checkTriple('mean', mean, false);
  checkTriple('std', std, true);
  const perImage = 3 * size * size;
  if (!(out instanceof Float32Array) || out.length < perImage) {
    throw invalid('out', `a Float32Array of at least 3x${size}x${size} floats`, out);
  }
  checkInteger('slot', slot, 0, Math.floor(out.length / perImage) - 1);
  const passOrder = options.passOrder ?? 'pillow13';
  if (!PASS_ORDERS.includes(passOrder)) throw invalid('passOrder', PASS_ORDERS.map((o) => `'${o}'`).join(', '), passOrder);
  return clipAddon().clipPreprocess(rgb, width, height, size, mean, std, out, slot, passOrder);
}

/** Resized size and crop offset for a width × height image (computed by the native kernel). */
export function clipGeometry(width: number, height: number, size: number): ClipGeometry {
  checkInteger('width', width, 1, MAX_SIDE);
  checkInteger('height', height, 1, MAX_SIDE);
  checkInteger('size', size, 1, MAX_SIZE);
  return clipAddon().clipGeometry(width, height, size);
}

export interface ClipTransformOptions {
  /** Input resolution of the vision tower (224 for ViT-B/32 and ViT-L/14, 336 for ViT-L/14-336). */
  size: number;
  mean?: ArrayLike<number>;
  std?: ArrayLike<number>;
  passOrder?: PillowPassOrder;
}

/** A CLIP preprocessing configuration, checked once, applied to many images. */
export class ClipTransform {
  readonly size: number;
  readonly mean: Float32Array;
  readonly std: Float32Array;
  readonly passOrder: PillowPassOrder;

  constructor(options: ClipTransformOptions) {
    this.size = checkInteger('size', options.size, 1, MAX_SIZE);
    this.mean = checkTriple('mean', Float32Array.from(options.mean ?? OPENAI_CLIP_MEAN), false);
    this.std = checkTriple('std', Float32Array.from(options.std ?? OPENAI_CLIP_STD), true);
    this.passOrder = options.passOrder ?? 'pillow13';
    if (!PASS_ORDERS.includes(this.passOrder)) throw invalid('passOrder', PASS_ORDERS.join(', '), this.passOrder);
  }

  /** Floats one image takes in a batch: 3 × size × size. */
  get floatsPerImage(): number {
    return 3 * this.size * this.size;
  }

  /** Preprocesses `image` into slot `slot` of `out` ([B, 3, size, size]). */
  into(image: DecodedImage, out: Float32Array, slot: number): Promise<void> {
    return clipPreprocess(image.data, image.width, image.height, this.size, this.mean, this.std, out, slot, {
      passOrder: this.passOrder,
    });
  }
}

import { native, type ClipGeometry } from '../native/addon.js';
import type { DecodedImage } from './decode.js';
import { PIL_MODE_FAMILIES } from './pil-mode.js';
import {
  checkImageProcessor, clipRules, CLIP_IMAGE_PROCESSORS, PILLOW_PASS_ORDERS, type ClipImageProcessor, type ImageKind, type PillowPassOrder,
} from './image-processor.js';
import { readOptions, type OptionsReader } from '../util/options.js';

export type { ClipImageProcessor, PillowPassOrder } from './image-processor.js';

/** OpenAI CLIP's normalisation (also used by open_clip's OpenAI and LAION checkpoints). */
export const OPENAI_CLIP_MEAN: readonly [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
export const OPENAI_CLIP_STD: readonly [number, number, number] = [0.26862954, 0.26130258, 0.27577711];

export type { ClipGeometry };

const MAX_SIDE = 2 ** 24;
const MAX_SIZE = 8192;

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

export interface ClipPreprocessOptions {
  /** Whose pipeline to reproduce; default 'open_clip'. */
  processor?: ClipImageProcessor;
  /** Pillow release whose pass order 'open_clip' reproduces; default 'pillow13'. */
  passOrder?: PillowPassOrder;
  /** 3 (RGB) or 4 (RGBA, as decodeImage gives with `alpha: 'keep'`); default 3. */
  channels?: 3 | 4;
  /** How PIL opens the file (see pil-mode.ts); default 'RGB'. */
  pilMode?: ImageKind['pilMode'];
}

/**
 * CLIP preprocessing of one decoded image as `options.processor`'s pipeline does it on a PIL image (see
 * image-processor.ts), written as float32 planes [3, size, size] into slot `slot` of `out`
 * ([B, 3, size, size]). The resize is Pillow's or torch's, bit for bit.
 *
 * Runs on the libuv thread pool, reading `pixels` and writing `out` in place (no copies): leave both
 * untouched until the promise settles. Bad arguments throw at once (TypeError), sharp-style.
 */
export function clipPreprocess(
  pixels: Uint8Array, width: number, height: number, size: number, mean: Float32Array, std: Float32Array,
  out: Float32Array, slot: number, options: ClipPreprocessOptions = {},
): Promise<void> {
  const channels = options.channels ?? 3;
  if (channels !== 3 && channels !== 4) throw invalid('channels', '3 or 4', channels);
  if (!(pixels instanceof Uint8Array)) throw invalid('pixels', `a Uint8Array of ${channels === 3 ? 'RGB8' : 'RGBA8'} pixels (HWC)`, pixels);
  checkInteger('width', width, 1, MAX_SIDE);
  checkInteger('height', height, 1, MAX_SIDE);
  checkInteger('size', size, 1, MAX_SIZE);
  if (pixels.length !== width * height * channels) {
    throw invalid('pixels', `${width * height * channels} bytes (${width}x${height}x${channels})`, pixels);
  }
  checkTriple('mean', mean, false);
  checkTriple('std', std, true);
  const perImage = 3 * size * size;
  if (!(out instanceof Float32Array) || out.length < perImage) {
    throw invalid('out', `a Float32Array of at least 3x${size}x${size} floats`, out);
  }
  checkInteger('slot', slot, 0, Math.floor(out.length / perImage) - 1);
  const passOrder = options.passOrder ?? 'pillow13';
  if (!PILLOW_PASS_ORDERS.includes(passOrder)) throw invalid('passOrder', PILLOW_PASS_ORDERS.map((o) => `'${o}'`).join(', '), passOrder);
  const processor = checkImageProcessor(options.processor ?? 'open_clip', 'processor');
  const pilMode = options.pilMode ?? 'RGB';
  if (!PIL_MODE_FAMILIES.includes(pilMode)) throw invalid('pilMode', PIL_MODE_FAMILIES.map((m) => `'${m}'`).join(', '), pilMode);
  const rules = clipRules(processor, { channels, pilMode }, passOrder);
  return native().clipPreprocess(pixels, width, height, size, mean, std, out, slot, rules);
}

/** Resized size and crop offset of a width × height image under `processor` (computed by the native kernel). */
export function clipGeometry(width: number, height: number, size: number, processor: ClipImageProcessor = 'open_clip'): ClipGeometry {
  checkInteger('width', width, 1, MAX_SIDE);
  checkInteger('height', height, 1, MAX_SIDE);
  checkInteger('size', size, 1, MAX_SIZE);
  const { crop } = clipRules(checkImageProcessor(processor, 'processor'), { channels: 3, pilMode: 'RGB' });
  return native().clipGeometry(width, height, size, crop);
}

/** Three per-channel values (R, G, B) as float32: finite, and positive where `positive` (std divides). */
function readTriple(o: OptionsReader, key: string, positive: boolean): Float32Array | undefined {
  const expected = `three ${positive ? 'positive' : 'finite'} numbers (R, G, B)`;
  const v = o.check(key, (x): x is ArrayLike<number> => Array.isArray(x) || (ArrayBuffer.isView(x) && !(x instanceof DataView)), expected);
  if (v === undefined) return undefined;
  const values = Float32Array.from(v);
  if (values.length !== 3 || !values.every((x) => Number.isFinite(x) && (!positive || x > 0))) throw o.rangeError(key, expected, v);
  return values;
}

export interface ClipTransformOptions {
  /** Input resolution of the vision tower (224 for ViT-B/32 and ViT-L/14, 336 for ViT-L/14-336). */
  size: number;
  mean?: ArrayLike<number>;
  std?: ArrayLike<number>;
  /** Whose pipeline to reproduce; default 'open_clip'. */
  processor?: ClipImageProcessor;
  passOrder?: PillowPassOrder;
}

/** A CLIP preprocessing configuration, checked once, applied to many images. */
export class ClipTransform {
  readonly size: number;
  readonly mean: Float32Array;
  readonly std: Float32Array;
  readonly passOrder: PillowPassOrder;
  readonly processor: ClipImageProcessor;

  constructor(options: ClipTransformOptions) {
    const o = readOptions(options, 'new ClipTransform()');
    this.size = o.required('size', o.int('size', { min: 1, max: MAX_SIZE }), `an integer between 1 and ${MAX_SIZE}`);
    this.mean = readTriple(o, 'mean', false) ?? Float32Array.from(OPENAI_CLIP_MEAN);
    this.std = readTriple(o, 'std', true) ?? Float32Array.from(OPENAI_CLIP_STD);
    this.passOrder = o.oneOf('passOrder', PILLOW_PASS_ORDERS) ?? 'pillow13';
    this.processor = o.oneOf('processor', CLIP_IMAGE_PROCESSORS) ?? 'open_clip';
    o.done();
  }

  /** Floats one image takes in a batch: 3 × size × size. */
  get floatsPerImage(): number {
    return 3 * this.size * this.size;
  }

  /** Preprocesses `image` into slot `slot` of `out` ([B, 3, size, size]). */
  into(image: DecodedImage, out: Float32Array, slot: number): Promise<void> {
    return clipPreprocess(image.data, image.width, image.height, this.size, this.mean, this.std, out, slot, {
      processor: this.processor,
      passOrder: this.passOrder,
      channels: image.channels,
      pilMode: image.pilMode,
    });
  }
}

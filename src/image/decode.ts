import sharp, { type Metadata, type OutputInfo } from 'sharp';
import { Img2PromptError, errorMessage } from '../util/errors.js';
import { formatNames, formatProblem, type FormatOptions } from './image-formats.js';
import { readOptions } from '../util/options.js';
import { readInputFile } from './input-file.js';
import { pilModeFamily, type PilModeFamily } from './pil-mode.js';

/** A decoded image: 8-bit sRGB, rows top to bottom (HWC, `width * height * channels` bytes). */
export interface DecodedImage {
  data: Buffer;
  width: number;
  height: number;
  /** 3 (RGB), or 4 (RGBA: decoded with `alpha: 'keep'` from an image with transparency). */
  channels: 3 | 4;
  /** How PIL would open the file, which decides how open_clip resizes it (see pil-mode.ts). */
  pilMode: PilModeFamily;
}

/**
 * 'apply': turn the image upright by its EXIF orientation, as image viewers show it. 'ignore': keep the
 * pixels as stored, as a bare PIL `Image.open` does, hence open_clip, transformers and the CLIP
 * Interrogator: their embeddings of a photo with an orientation tag are of the stored, sideways pixels.
 */
export type ExifMode = 'apply' | 'ignore';
export const EXIF_MODES: readonly ExifMode[] = ['apply', 'ignore'];

export interface DecodeOptions extends FormatOptions {
  /** Refuse images with more pixels than this (width × height), before decoding them. Default 100 MP. */
  maxPixels?: number;
  /**
   * Convert through the embedded ICC profile (e.g. Adobe RGB → sRGB). Off by default: PIL ignores
   * embedded profiles, and CLIP was trained on PIL's pixels, so ignoring them is what matches.
   * CMYK images are converted to sRGB either way.
   */
  applyIccProfile?: boolean;
  /** Name used in error messages when `input` is a Buffer (a path names itself). */
  name?: string;
  /** EXIF orientation: 'apply' (default) or 'ignore'. */
  exif?: ExifMode;
  /**
   * 'drop' (default): RGB, the colour stored under a transparent pixel kept as is. 'keep': RGBA for an
   * image with transparency (an alpha channel, or a PNG/GIF transparent colour), for the preprocessors
   * that use it (alpha onto white for transformers, premultiplied resizing for open_clip).
   */
  alpha?: 'drop' | 'keep';
}

export const DEFAULT_MAX_PIXELS = 100_000_000;

/**
 * Decodes PNG, JPEG, WebP, AVIF, TIFF or GIF (first frame) the way PIL's
 * `ImageOps.exif_transpose(Image.open(f)).convert('RGB')` does (`Image.open(f).convert('RGB')` with
 * `exif: 'ignore'`):
 * - EXIF orientation applied (unless `exif: 'ignore'`);
 * - greyscale, palette (with or without tRNS), CMYK and 16-bit images become 8-bit sRGB
 *   (16 → 8 bits keeps the high byte, as PIL does for 16-bit RGB PNGs; PIL clips 16-bit greyscale
 *   instead of scaling it, which we don't copy);
 * - alpha is dropped, not composited: like PIL's convert('RGB'), the colour stored under a
 *   transparent or half-transparent pixel is kept as is, whatever the background would have been
 *   (with `alpha: 'keep'` it comes along as a fourth channel instead; GIF transparent pixels come out
 *   black whatever their palette colour, a libvips choice PIL does not make).
 * A path is read only when it is a regular file (see input-file.ts), and only bytes that start like
 * one of the readable formats reach sharp (image-formats.ts: SVG only with `allowSvg`).
 * Errors (missing, not a regular file, unreadable, not an image, truncated, too large) are
 * Img2PromptErrors naming the file, with a one-line reason.
 */
export async function decodeImage(input: string | Uint8Array, options: DecodeOptions = {}): Promise<DecodedImage> {
  const o = readOptions(options, 'decodeImage()');
  const maxPixels = o.int('maxPixels', { min: 1 }) ?? DEFAULT_MAX_PIXELS;
  const exif = o.oneOf('exif', EXIF_MODES) ?? 'apply';
  const alpha = o.oneOf('alpha', ['drop', 'keep']) ?? 'drop';
  const applyIccProfile = o.bool('applyIccProfile') ?? false;
  const allowSvg = o.bool('allowSvg') ?? false;
  const bufferName = o.string('name');
  const name = typeof input === 'string' ? input : (bufferName ?? '<buffer>');
  o.done();
  const bytes = typeof input === 'string' ? await readInputFile(input) : input;
  const refused = formatProblem(bytes, { allowSvg });
  if (refused !== undefined) throw new Img2PromptError(name, refused, { code: 'IMAGE_UNREADABLE' });
  // failOn 'error': truncated or corrupt data fails, as in PIL; libjpeg/libpng warnings don't.
  const image = sharp(bytes, { limitInputPixels: maxPixels, failOn: 'error', ignoreIcc: !applyIccProfile });
  let meta: Metadata;
  let result: { data: Buffer; info: OutputInfo };
  let keepAlpha: boolean;
  try {
    meta = await image.metadata();
    keepAlpha = alpha === 'keep' && meta.hasAlpha === true;
    const upright = exif === 'apply' ? image.rotate() : image;
    const srgb = upright.toColourspace('srgb');
    result = await (keepAlpha ? srgb.ensureAlpha() : srgb.removeAlpha()).raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  } catch (err) {
    const reason = await describeFailure(bytes, err, maxPixels, { allowSvg });
    // sharp read the bytes, not the file: its "Input buffer …" means the user's file.
    throw new Img2PromptError(name, typeof input === 'string' ? reason.replace(/\bInput buffer\b/g, 'Input file') : reason, { code: 'IMAGE_UNREADABLE', cause: err });
  }
  const { data, info } = result;
  const channels = keepAlpha ? 4 : 3;
  if (info.channels !== channels || data.length !== info.width * info.height * channels) {
    throw new Img2PromptError(name, `decoded to ${info.channels} channels of ${info.width}x${info.height}, expected ${keepAlpha ? 'RGBA' : 'RGB'}`, { code: 'IMAGE_UNREADABLE' });
  }
  return { data, width: info.width, height: info.height, channels, pilMode: await pilModeFamily(bytes, meta) };
}

/** 135300 → "135,300": exact, since limits near the image size would round to the same megapixels. */
const count = (n: number) => n.toLocaleString('en-US');

/** sharp's reason, made specific where sharp's own words are vague. */
async function describeFailure(input: Uint8Array, err: unknown, maxPixels: number, formats: FormatOptions): Promise<string> {
  const reason = oneLine(errorMessage(err));
  if (/exceeds pixel limit/i.test(reason)) {
    const size = await sharp(input, { limitInputPixels: false }).metadata().then(
      (m) => (m.width && m.height ? `${m.width}x${m.height} = ${count(m.width * m.height)} pixels` : 'the image'),
      () => 'the image',
    );
    return `${size} is over the limit of ${count(maxPixels)} pixels (maxPixels, --max-pixels)`;
  }
  if (/unsupported image format/i.test(reason)) return `not a supported image (${formatNames(formats)}): ${reason}`;
  // libvips keeps one error buffer for all threads, so with several decodes in flight the reason can
  // come back as "Unknown error". The header tells, on its own, whether the file is an image at all.
  const header = await sharp(input).metadata().then(
    (m) => (m.format && m.width && m.height ? `${m.format} ${m.width}x${m.height}` : undefined),
    () => undefined,
  );
  const said = reason && !/^unknown error$/i.test(reason) ? `: ${reason}` : '';
  if (header) return `cannot decode image: corrupt or truncated pixel data (header reads ${header})${said}`;
  return `cannot decode image${said || ': unreadable header'}`;
}

/**
 * libvips' message as one line: it can span several lines, repeat them (one per retry) and end in an
 * empty detail ("Input file has corrupt header:"), none of which belongs in a `<file>: <reason>` line.
 */
function oneLine(message: string): string {
  const lines = message.split(/\r?\n/).map((l) => l.trim().replace(/:$/, '').trim()).filter((l) => l !== '');
  return [...new Set(lines)].join('; ');
}

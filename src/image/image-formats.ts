/**
 * The image formats img2prompt reads: the one list that both the folder walker (which files of a folder
 * are images) and the decoder (which bytes it hands to sharp) go by, so a file the walker lists is one
 * the decoder accepts. The decoder recognises a format by its signature bytes, not by the file name.
 *
 * Raster formats only by default. SVG is opt-in (`allowSvg`, `--allow-svg`): rendering a vector file
 * runs an XML parser and may fetch the files it references, which is not what a folder of photos needs.
 * sharp can also open libvips' own `.v` format; it is left out on purpose (not an image exchange format).
 */
import path from 'node:path';

export interface ImageFormat {
  /** Display name, as in error messages. */
  name: string;
  /** File name extensions (lower case, with the dot) that the folder walker lists. */
  extensions: readonly string[];
  /** True when `head` (the file's first bytes) starts like this format. */
  matches(head: Uint8Array): boolean;
}

const ascii = (head: Uint8Array, at: number, text: string): boolean =>
  head.length >= at + text.length && [...text].every((c, i) => head[at + i] === c.charCodeAt(0));
const bytes = (head: Uint8Array, at: number, values: readonly number[]): boolean =>
  head.length >= at + values.length && values.every((v, i) => head[at + i] === v);

/** ISO-BMFF `ftyp` box whose major or compatible brands include AVIF's (HEIC is not decodable by sharp's libheif). */
function isAvif(head: Uint8Array): boolean {
  if (!ascii(head, 4, 'ftyp') || head.length < 16) return false;
  const boxSize = Math.min(((head[0]! << 24) | (head[1]! << 16) | (head[2]! << 8) | head[3]!) >>> 0, head.length);
  const brands = [8, ...Array.from({ length: Math.max(0, (boxSize - 16) >> 2) }, (_, i) => 16 + 4 * i)];
  return brands.some((at) => ascii(head, at, 'avif') || ascii(head, at, 'avis'));
}

export const RASTER_FORMATS: readonly ImageFormat[] = [
  { name: 'PNG', extensions: ['.png'], matches: (h) => bytes(h, 0, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]) },
  { name: 'JPEG', extensions: ['.jpg', '.jpeg'], matches: (h) => bytes(h, 0, [0xff, 0xd8, 0xff]) },
  { name: 'WebP', extensions: ['.webp'], matches: (h) => ascii(h, 0, 'RIFF') && ascii(h, 8, 'WEBP') },
  { name: 'AVIF', extensions: ['.avif'], matches: isAvif },
  // Classic and BigTIFF, either byte order.
  { name: 'TIFF', extensions: ['.tif', '.tiff'], matches: (h) => ['II*\0', 'MM\0*', 'II+\0', 'MM\0+'].some((s) => ascii(h, 0, s)) },
  { name: 'GIF', extensions: ['.gif'], matches: (h) => ascii(h, 0, 'GIF87a') || ascii(h, 0, 'GIF89a') },
];

/** How far into a file the SVG test looks for the `<svg` element (past an XML declaration, comments, a doctype). */
const SVG_SNIFF_BYTES = 4096;

export const SVG_FORMAT: ImageFormat = {
  name: 'SVG',
  extensions: ['.svg'],
  // XML text whose head holds an <svg element; a gzipped .svgz is not accepted.
  matches(head) {
    const text = Buffer.from(head.subarray(0, SVG_SNIFF_BYTES)).toString('utf8').replace(/^\uFEFF/, '').trimStart();
    return text.startsWith('<') && /<svg[\s>]/i.test(text);
  },
};

export interface FormatOptions {
  /** Also read SVG files (rendered by librsvg). Default false. */
  allowSvg?: boolean;
}

/** The formats read under `options`. */
export function readableFormats(options: FormatOptions = {}): readonly ImageFormat[] {
  return options.allowSvg ? [...RASTER_FORMATS, SVG_FORMAT] : RASTER_FORMATS;
}

/** Extensions (lower case, with the dot) of the formats read under `options`. */
export function imageExtensions(options: FormatOptions = {}): ReadonlySet<string> {
  return new Set(readableFormats(options).flatMap((f) => f.extensions));
}

/** True when `file`'s extension is one of the readable formats' (case-insensitive). */
export function hasImageExtension(file: string, options: FormatOptions = {}): boolean {
  return imageExtensions(options).has(path.extname(file).toLowerCase());
}

/** "PNG, JPEG, WebP, AVIF, TIFF, GIF" (plus SVG when allowed), for messages. */
export function formatNames(options: FormatOptions = {}): string {
  return readableFormats(options)
    .map((f) => f.name)
    .join(', ');
}

/**
 * Why the bytes `head` (a file's start, or all of it) are not to be decoded under `options`, or
 * undefined when they start like a readable format.
 */
export function formatProblem(head: Uint8Array, options: FormatOptions = {}): string | undefined {
  if (readableFormats(options).some((f) => f.matches(head))) return undefined;
  if (!options.allowSvg && SVG_FORMAT.matches(head)) {
    return 'an SVG (vector) image: only raster images are read unless SVG is allowed (--allow-svg, allowSvg)';
  }
  return `not a supported image (${formatNames(options)})`;
}

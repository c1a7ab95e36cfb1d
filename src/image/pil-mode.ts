import { promises as fs } from 'node:fs';
import type { Metadata } from 'sharp';

/**
 * The mode PIL opens an image file in, reduced to what changes how open_clip resizes it. open_clip (like
 * OpenAI's CLIP) resizes the image in that mode and converts to RGB only after the centre crop, and
 * Pillow resizes
 * - 'P': palette and 1-bit images, with nearest neighbour whatever filter is asked for;
 * - 'RGBA': images with an alpha channel (RGBA, LA), premultiplied by alpha, divided back afterwards;
 * - 'RGB': everything else (RGB, L, CMYK, 16-bit), channel by channel. A single transparent colour
 *   (PNG tRNS on a grey or RGB image) is not an alpha channel to PIL: it stays in `info`, not in the pixels.
 */
export type PilModeFamily = 'RGB' | 'RGBA' | 'P';
export const PIL_MODE_FAMILIES: readonly PilModeFamily[] = ['RGB', 'RGBA', 'P'];

/** PNG colour types (IHDR byte 25) that store an alpha channel: grey + alpha (4) and RGBA (6). */
const PNG_ALPHA_COLOUR_TYPES = new Set([4, 6]);

/** Bit depth and colour type from a PNG's IHDR (bytes 24 and 25, right after the signature and chunk header). */
async function pngHeader(input: string | Uint8Array): Promise<{ bitDepth: number; colourType: number } | undefined> {
  let head: Uint8Array;
  if (typeof input === 'string') {
    const file = await fs.open(input, 'r');
    try {
      head = new Uint8Array(26);
      const { bytesRead } = await file.read(head, 0, 26, 0);
      head = head.subarray(0, bytesRead);
    } finally {
      await file.close();
    }
  } else {
    head = input.subarray(0, 26);
  }
  if (head.length < 26) return undefined;
  return { bitDepth: head[24]!, colourType: head[25]! };
}

/**
 * The PIL mode family of the image `input` whose sharp metadata is `meta`. GIFs count as 'P' (Pillow
 * opens a GIF whose palette is exactly the grey ramp as 'L'; such files are not told apart here).
 */
export async function pilModeFamily(input: string | Uint8Array, meta: Metadata): Promise<PilModeFamily> {
  if (meta.isPalette || meta.format === 'gif' || meta.bitsPerSample === 1) return 'P';
  if (!meta.hasAlpha) return 'RGB';
  if (meta.format !== 'png') return 'RGBA';
  // libspng turns a tRNS colour into an alpha channel, so sharp reports alpha for those PNGs too.
  const header = await pngHeader(input);
  return header && !PNG_ALPHA_COLOUR_TYPES.has(header.colourType) ? 'RGB' : 'RGBA';
}

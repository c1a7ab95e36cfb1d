// The engine's preprocessing against the two reference pipelines on the 22 shared images:
// test/fixtures/clip-pixels.json, written by scripts/fixtures/clip_pixels.py (transformers 5.25's
// CLIPImageProcessor with openai/clip-vit-base-patch32's settings, open_clip 3.3's eval transform;
// Pillow 13, torch 2.15, each file opened with a bare Image.open, so EXIF orientation ignored).
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { decodeImage, type DecodedImage } from '../src/image/decode.js';
import { ClipTransform } from '../src/image/clip-transform.js';
import type { ClipImageProcessor } from '../src/image/image-processor.js';
import { asset, KAGGLE_SAMPLE } from './helpers/paths.js';

interface ProcessorEntry {
  /** sha256 of the 8-bit [224, 224, 3] crop fed to ToTensor / rescale. */
  crop: string;
  /** sha256 of the float32 [3, 224, 224] tensor fed to the model (little endian). */
  normalised: string;
  /** The crop itself, zlib-compressed, for the images the engine does not reproduce. */
  cropZlibBase64?: string;
}

interface Fixture {
  size: number;
  mean: [number, number, number];
  std: [number, number, number];
  images: Record<string, {
    sha256: string;
    mode: string;
    notCopied?: string;
    exifOrientation?: number;
    /** The references on `ImageOps.exif_transpose(Image.open(file))`. */
    exifTransposed?: Record<ClipImageProcessor, ProcessorEntry>;
  } & Record<ClipImageProcessor, ProcessorEntry>>;
}

const FIXTURE = JSON.parse(fs.readFileSync(path.join('test', 'fixtures', 'clip-pixels.json'), 'utf8')) as Fixture;
const PROCESSORS = ['open_clip', 'hf'] as const satisfies readonly ClipImageProcessor[];
const SIZE = FIXTURE.size;
const DIRS = [asset('images'), path.join(KAGGLE_SAMPLE, 'images')];
const fileOf = (name: string) => DIRS.map((d) => path.join(d, name)).find((f) => fs.existsSync(f))!;
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const floatBytes = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/**
 * Largest 8-bit level difference to each reference, per image, measured. Every other image is bit-exact
 * for both processors: the normalised float32 tensor has the reference's sha256. These two are the PIL
 * behaviours the engine does not copy (README "Images"):
 * - pillow-i_trns.png, 16-bit greyscale holding values 0..255: PIL converts 'I;16' to RGB by clipping at
 *   255 (the picture), the engine scales 16 → 8 bits (values / 257: black).
 * - pillow-pil_sample_cmyk.jpg: PIL converts CMYK with the naive 255 - (C + K) formula (open_clip even
 *   resizes in CMYK first), the engine through a CMYK profile, closer to the RGB original (checked below).
 */
const NOT_COPIED_MAX_LEVELS: Record<string, Record<'open_clip' | 'hf', number>> = {
  'pillow-i_trns.png': { open_clip: 255, hf: 253 },
  'pillow-pil_sample_cmyk.jpg': { open_clip: 55, hf: 27 },
};

/** Normalised float32 value → 8-bit level, per channel, for `processor`'s normalisation. */
function levelTables(processor: ClipImageProcessor): Map<number, number>[] {
  const f = Math.fround;
  return [0, 1, 2].map((c) => {
    const m = f(FIXTURE.mean[c]);
    const s = f(FIXTURE.std[c]);
    const table = new Map<number, number>();
    for (let u = 0; u < 256; u++) {
      // open_clip: ToTensor (u / 255) then Normalize; transformers: (u - 255 mean) / (255 std), fused.
      table.set(processor === 'hf' ? f(f(u - f(m * 255)) / f(s * 255)) : f(f(f(u / 255) - m) / s), u);
    }
    return table;
  });
}

/** The 8-bit HWC crop behind a normalised [3, N, N] tensor (throws on a value that is no level). */
function levelsOf(out: Float32Array, processor: ClipImageProcessor): Uint8Array {
  const tables = levelTables(processor);
  const plane = SIZE * SIZE;
  const hwc = new Uint8Array(3 * plane);
  for (let c = 0; c < 3; c++) {
    for (let p = 0; p < plane; p++) {
      const u = tables[c]!.get(out[c * plane + p]!);
      if (u === undefined) throw new Error(`${out[c * plane + p]} is not a ${processor} level of channel ${c}`);
      hwc[p * 3 + c] = u;
    }
  }
  return hwc;
}

async function preprocess(image: DecodedImage, processor: ClipImageProcessor): Promise<Float32Array> {
  const out = new Float32Array(3 * SIZE * SIZE);
  await new ClipTransform({ size: SIZE, mean: FIXTURE.mean, std: FIXTURE.std, processor }).into(image, out, 0);
  return out;
}

const decodeAs = (name: string, exif: 'apply' | 'ignore') => decodeImage(fileOf(name), { exif, alpha: 'keep' });

function maxLevelDiff(a: Uint8Array, b: Uint8Array): { max: number; differing: number } {
  let max = 0;
  let differing = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (d > 0) differing++;
    if (d > max) max = d;
  }
  return { max, differing };
}

describe('the fixture', () => {
  it('covers the 22 shared images, unchanged since it was written', () => {
    const names = Object.keys(FIXTURE.images);
    expect(names).toHaveLength(22);
    for (const name of names) expect(sha256(fs.readFileSync(fileOf(name))), name).toBe(FIXTURE.images[name]!.sha256);
    expect(Object.keys(NOT_COPIED_MAX_LEVELS).every((n) => FIXTURE.images[n]?.notCopied)).toBe(true);
  });
});

describe.each(PROCESSORS)('exif ignore, processor %s: the reference pipeline, image by image', (processor) => {
  it('20 images bit-exact (normalised tensor and 8-bit crop), the two PIL behaviours not copied as measured', async () => {
    const lines: string[] = [];
    for (const [name, entry] of Object.entries(FIXTURE.images)) {
      const out = await preprocess(await decodeAs(name, 'ignore'), processor);
      const crop = levelsOf(out, processor);
      const ref = entry[processor];
      const notCopied = NOT_COPIED_MAX_LEVELS[name];
      if (!notCopied) {
        expect(sha256(crop), `${name}: 8-bit crop`).toBe(ref.crop);
        expect(sha256(floatBytes(out)), `${name}: normalised tensor`).toBe(ref.normalised);
        lines.push(`${name.padEnd(34)} ${entry.mode.padEnd(5)} bit-exact`);
        continue;
      }
      const reference = zlib.inflateSync(Buffer.from(ref.cropZlibBase64!, 'base64'));
      expect(sha256(reference), `${name}: stored crop`).toBe(ref.crop);
      const { max, differing } = maxLevelDiff(crop, reference);
      expect(max, name).toBe(notCopied[processor]);
      lines.push(`${name.padEnd(34)} ${entry.mode.padEnd(5)} max ${max} levels, ${differing}/${crop.length} values (${entry.notCopied}, not copied)`);
    }
    console.log(`${processor}, exif ignore, vs the reference:\n${lines.join('\n')}`);
  });
});

describe('what the engine does instead of copying PIL', () => {
  it('CMYK: the engine\'s conversion is nearer the RGB version of the same picture than PIL\'s naive one', async () => {
    for (const processor of PROCESSORS) {
      const rgb = levelsOf(await preprocess(await decodeAs('pillow-pil_sample_rgb.jpg', 'ignore'), processor), processor);
      const engine = levelsOf(await preprocess(await decodeAs('pillow-pil_sample_cmyk.jpg', 'ignore'), processor), processor);
      const pil = zlib.inflateSync(Buffer.from(FIXTURE.images['pillow-pil_sample_cmyk.jpg']![processor].cropZlibBase64!, 'base64'));
      const mean = (a: Uint8Array, b: Uint8Array) => a.reduce((s, v, i) => s + Math.abs(v - b[i]!), 0) / a.length;
      const [ours, theirs] = [mean(engine, rgb), mean(pil, rgb)];
      console.log(`${processor}: mean |CMYK crop - RGB crop|: engine ${ours.toFixed(2)} levels, PIL ${theirs.toFixed(2)}`);
      expect(ours).toBeLessThan(theirs);
    }
  });
});

describe('exif apply: the orientation-6 photo is turned upright, everything else unchanged', () => {
  const ROTATED = 'pillow-hopper_orientation_6.jpg';

  it.each(PROCESSORS)('%s: the photo equals the reference fed ImageOps.exif_transpose, not the bare reference', async (processor) => {
    const entry = FIXTURE.images[ROTATED]!;
    expect(entry.exifOrientation).toBe(6);
    const ignored = await preprocess(await decodeAs(ROTATED, 'ignore'), processor);
    const applied = await preprocess(await decodeAs(ROTATED, 'apply'), processor);
    expect(sha256(floatBytes(ignored))).toBe(entry[processor].normalised);
    expect(sha256(floatBytes(applied))).toBe(entry.exifTransposed![processor].normalised);
    expect(sha256(levelsOf(applied, processor))).toBe(entry.exifTransposed![processor].crop);
    const { max, differing } = maxLevelDiff(levelsOf(applied, processor), levelsOf(ignored, processor));
    console.log(`${processor}: ${ROTATED} exif apply vs ignore: max ${max} levels at ${differing}/${applied.length} values`);
    expect(differing / applied.length).toBeGreaterThan(0.9);
  });

  it('images without an orientation tag give the same bits either way', async () => {
    for (const name of ['pillow-hopper.jpg', 'skimage-rocket.jpg', 'skimage-logo.png', '20057f34d.png']) {
      for (const processor of PROCESSORS) {
        const [a, b] = [await preprocess(await decodeAs(name, 'apply'), processor), await preprocess(await decodeAs(name, 'ignore'), processor)];
        expect(sha256(floatBytes(a)), `${name} ${processor}`).toBe(sha256(floatBytes(b)));
      }
    }
  });
});

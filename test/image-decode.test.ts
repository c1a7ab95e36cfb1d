import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeImage } from '../src/image/decode.js';
import { Img2PromptError } from '../src/util/errors.js';
import { asset, KAGGLE_SAMPLE, tempDir } from './helpers/paths.js';

const IMAGES = asset('images');
const KAGGLE_IMAGES = path.join(KAGGLE_SAMPLE, 'images');
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

// sha256 of `ImageOps.exif_transpose(Image.open(f)).convert('RGB').tobytes()` with Pillow 13.0.0: an
// independent decoder's answer. Two files are left out on purpose (checked below instead):
// pillow-pil_sample_cmyk.jpg (Pillow converts CMYK with a naive formula, we use a CMYK profile) and
// pillow-i_trns.png (Pillow clips 16-bit greyscale to 0..255 instead of scaling it).
const PILLOW_RGB: Record<string, [number, number, string]> = {
  'pillow-hopper.jpg': [128, 128, '719b9eeda0a26779271f4c33a329c8488f821149a67b9955f873a49995294c3a'],
  'pillow-hopper.png': [128, 128, '87ce2dc3eea0549d83beb8013872498a3ce5267acaa22fbd26335ccb680700d5'],
  'pillow-hopper_gray.jpg': [128, 128, 'af02452b49f6f7ed2649e7228def07c928a81a6e19f75cbd806e1ea5a331b351'],
  'pillow-hopper_orientation_6.jpg': [128, 128, 'c3e9b122e6e5727922feb1aa24282205234a77f99d84a02ea022dc46d339c777'],
  'pillow-l_trns.png': [64, 64, '4fa104f9a86a2a99c20248ec21fe4be5bbd45b7da69a79f58ecc9bb19b67f7c9'],
  'pillow-p_trns_single.png': [64, 64, '963f657c42caaa8f80607fa776d6dd0b3dadfaabd5f0c19ec87ee93a5528d1bc'],
  'pillow-pil123rgba.png': [162, 150, '82e60836df56f42a07f8f6d1b0a9366bd8abfb2e753ee8238907f9efce5b048e'],
  'pillow-pil_sample_rgb.jpg': [100, 100, '53031526f70af49487684e555e2fec84553a81d6b66c5efb5ea02aef74d678a1'],
  'skimage-camera.png': [512, 512, '13e2b4aa92cb1649b4aac5a4d48b38a8ea3a18b86e8abdf5a4871abf24c9d038'],
  'skimage-chelsea.png': [451, 300, '416b729128bfb2c3d1eb69bf9b1734a796293abc17939267b2dc94f8a5784031'],
  'skimage-coffee.png': [600, 400, '0ce2b51640b9c95f19617f03eabf40c3f0368589cc1ee1190b70966165ac184f'],
  'skimage-logo.png': [500, 500, '17be4850288aa25b79790e4508165da432585627d4bd46d7992ab1d6496f43df'],
  // Carries an Adobe RGB profile that PIL ignores; so do we by default.
  'skimage-rocket.jpg': [640, 427, '3d4435cc745752b7f9724df88c6e18817de3ce7e3d2d71c55f85f7831e68f197'],
  '20057f34d.png': [512, 512, 'c9c26fb58b77af15fd6773bed44e68521c5cd3e5f675e362f92d7d38cf8b29a6'],
  '227ef0887.png': [512, 512, '7a1566fd3bd5d852f549212cbb28d82614891945625bdd9e63055d3c3ad3f461'],
  '92e911621.png': [512, 512, 'a194a52f5fbb0d5ef6138a1d405875b77cdc885094253c13a827d1f80e5b3eec'],
  'a4e1c55a9.png': [512, 512, '419544c6b971b3b3603fe80139912c6bce9d380ef3783d0252cd6b6fece9b1e1'],
  'c98f79f71.png': [512, 512, '0eb70956c292929652e7049aab1e9a9e3eb44c443d8799e2127a554244261b0e'],
  'd8edf2e40.png': [512, 512, '0449f00aa7b0620e141a6450f3b6ffe54799d461a1927c3bd0e4bfc9c18504cd'],
  'f27825b2c.png': [512, 512, '2247c4dbc15b6a3a640b848389ac27e2144102d5bf75d9c62573b644058a1ccf'],
};

const listImages = (dir: string) => fs.readdirSync(dir).filter((f) => !f.startsWith('LICENSE')).map((f) => path.join(dir, f));
const ALL = [...listImages(IMAGES), ...listImages(KAGGLE_IMAGES)];

function meanAbsDiff(a: Uint8Array, b: Uint8Array): number {
  expect(a.length).toBe(b.length);
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i] - b[i]);
  return sum / a.length;
}

/** RGBA exactly as stored in the file (no conversion, alpha kept). */
async function storedRgba(file: string) {
  const { data, info } = await sharp(file).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  expect(info.channels).toBe(4);
  return data;
}

const tmp = tempDir('img2prompt-decode-');
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('decodeImage on every shared image', () => {
  it('finds the 15 odd images and the 7 Kaggle PNGs', () => {
    expect(ALL).toHaveLength(22);
  });

  it.each(ALL.map((f) => [path.basename(f), f]))('%s → RGB8 HWC', async (name, file) => {
    const img = await decodeImage(file);
    expect(img.data.length).toBe(img.width * img.height * 3);
    const expected = PILLOW_RGB[name];
    if (expected) {
      expect([img.width, img.height]).toEqual(expected.slice(0, 2));
      expect(sha256(img.data)).toBe(expected[2]); // byte-identical to Pillow's convert('RGB')
    }
  });
});

describe('colour conversions', () => {
  it('applies EXIF orientation 6 (the stored pixels are rotated 90°)', async () => {
    const upright = await decodeImage(path.join(IMAGES, 'pillow-hopper.jpg'));
    const oriented = await decodeImage(path.join(IMAGES, 'pillow-hopper_orientation_6.jpg'));
    const asStored = await sharp(path.join(IMAGES, 'pillow-hopper_orientation_6.jpg')).raw().toBuffer();
    const rotatedDiff = meanAbsDiff(oriented.data, upright.data);
    const storedDiff = meanAbsDiff(asStored, upright.data);
    // Measured 4.65 (same photo, two JPEG encodes) against 75 as stored and 59..82 for the other
    // rotations and flips.
    expect(rotatedDiff).toBeLessThan(6);
    expect(storedDiff).toBeGreaterThan(50);
  });

  describe('EXIF orientations 1-8 on a synthetic image', () => {
    // 16x8 and asymmetric: every pixel has its own colour (R from the column, G from the row).
    const W = 16;
    const H = 8;
    const source = Buffer.alloc(W * H * 3);
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) source.set([8 + x * 15, 10 + y * 30, 128], (y * W + x) * 3);
    }

    /**
     * The upright image for EXIF orientation n, by hand: where displayed pixel (x, y) comes from in
     * the stored w x h image (PIL's exif_transpose: 2 FLIP_LEFT_RIGHT, 3 ROTATE_180, 4 FLIP_TOP_BOTTOM,
     * 5 TRANSPOSE, 6 rotate 90° clockwise, 7 TRANSVERSE, 8 rotate 90° anticlockwise).
     */
    function upright(stored: Uint8Array, w: number, h: number, n: number) {
      const from: Record<number, (x: number, y: number) => [number, number]> = {
        1: (x, y) => [x, y],
        2: (x, y) => [w - 1 - x, y],
        3: (x, y) => [w - 1 - x, h - 1 - y],
        4: (x, y) => [x, h - 1 - y],
        5: (x, y) => [y, x],
        6: (x, y) => [y, h - 1 - x],
        7: (x, y) => [w - 1 - y, h - 1 - x],
        8: (x, y) => [w - 1 - y, x],
      };
      const [width, height] = n >= 5 ? [h, w] : [w, h];
      const data = Buffer.alloc(width * height * 3);
      for (let y = 0; y < height; y++) {
        for (let x = 0; x < width; x++) {
          const [sx, sy] = from[n]!(x, y);
          const at = (sy * w + sx) * 3;
          data.set(stored.subarray(at, at + 3), (y * width + x) * 3);
        }
      }
      return { data, width, height };
    }

    for (let n = 1; n <= 8; n++) {
      it(`orientation ${n}`, async () => {
        const file = path.join(tmp, `orientation-${n}.jpg`);
        await sharp(source, { raw: { width: W, height: H, channels: 3 } })
          .jpeg({ quality: 100, chromaSubsampling: '4:4:4' })
          .withMetadata({ orientation: n })
          .toFile(file);
        expect((await sharp(file).metadata()).orientation).toBe(n);
        // The pixels as stored (sharp without autoOrient): the JPEG's rounding of `source`, not turned.
        const stored = await sharp(file).raw().toBuffer({ resolveWithObject: true });
        expect([stored.info.width, stored.info.height]).toEqual([W, H]);
        expect(meanAbsDiff(stored.data, source)).toBeLessThan(2);

        const decoded = await decodeImage(file);
        const want = upright(stored.data, W, H, n);
        expect([decoded.width, decoded.height]).toEqual([want.width, want.height]);
        expect(decoded.data.equals(want.data)).toBe(true);
        // Against the hand-made picture itself too (up to the JPEG's rounding).
        expect(meanAbsDiff(decoded.data, upright(source, W, H, n).data)).toBeLessThan(2);
      });
    }

    it('the eight results are eight different pictures (the test image has no symmetry)', () => {
      const seen = new Set<string>();
      for (let n = 1; n <= 8; n++) {
        const u = upright(source, W, H, n);
        seen.add(`${u.width}x${u.height}:${u.data.toString('hex')}`);
      }
      expect(seen.size).toBe(8);
    });
  });

  it('turns the Adobe CMYK JPEG into the same picture as its RGB twin', async () => {
    const cmyk = await decodeImage(path.join(IMAGES, 'pillow-pil_sample_cmyk.jpg'));
    const rgb = await decodeImage(path.join(IMAGES, 'pillow-pil_sample_rgb.jpg'));
    const diff = meanAbsDiff(cmyk.data, rgb.data);
    console.log(`CMYK vs RGB sample: mean abs difference ${diff.toFixed(4)} levels`);
    // Measured 0.78 (Pillow's own CMYK conversion is 4.7 levels off): far below any inverted-channel
    // mistake, which would be ~100.
    expect(diff).toBeLessThan(1.5);
  });

  it('expands greyscale to three equal channels', async () => {
    const img = await decodeImage(path.join(IMAGES, 'skimage-camera.png'));
    const grey = await sharp(path.join(IMAGES, 'skimage-camera.png')).extractChannel(0).raw().toBuffer();
    for (let i = 0; i < grey.length; i++) {
      if (img.data[i * 3] !== grey[i] || img.data[i * 3 + 1] !== grey[i] || img.data[i * 3 + 2] !== grey[i]) {
        throw new Error(`pixel ${i} differs from the grey value ${grey[i]}`);
      }
    }
  });

  it('scales 16 bits to 8 by keeping the high byte (as Pillow does for 16-bit RGB)', async () => {
    const w = 64;
    const h = 32;
    const u16 = new Uint16Array(w * h * 3);
    for (let i = 0; i < u16.length; i++) u16[i] = (i * 2654435761) % 65536;
    const file = path.join(tmp, 'rgb16.png');
    await sharp(u16, { raw: { width: w, height: h, channels: 3 } }).toColourspace('rgb16').png().toFile(file);
    expect((await sharp(file).metadata()).depth).toBe('ushort');
    const img = await decodeImage(file);
    for (let i = 0; i < u16.length; i++) if (img.data[i] !== u16[i] >> 8) throw new Error(`sample ${i}: ${img.data[i]} != ${u16[i] >> 8}`);
  });

  it('reads 16-bit greyscale with tRNS (values 0..255 out of 65535 are near black)', async () => {
    const img = await decodeImage(path.join(IMAGES, 'pillow-i_trns.png'));
    expect([img.width, img.height]).toEqual([64, 64]);
    expect(Math.max(...img.data)).toBe(0);
  });
});

describe('alpha is dropped like PIL convert("RGB"): no compositing', () => {
  it.each(['pillow-pil123rgba.png', 'pillow-p_trns_single.png', 'pillow-l_trns.png', 'skimage-logo.png'])('%s keeps the stored RGB', async (name) => {
    const file = path.join(IMAGES, name);
    const rgba = await storedRgba(file);
    const img = await decodeImage(file);
    let transparent = 0;
    let partial = 0;
    for (let p = 0; p < img.width * img.height; p++) {
      const a = rgba[p * 4 + 3];
      if (a === 0) transparent++;
      else if (a < 255) partial++;
      for (let c = 0; c < 3; c++) {
        if (img.data[p * 3 + c] !== rgba[p * 4 + c]) throw new Error(`pixel ${p} (alpha ${a}) channel ${c} was changed`);
      }
    }
    const counts: Record<string, [number, number]> = {
      'pillow-pil123rgba.png': [11780, 6456],
      'pillow-p_trns_single.png': [876, 0],
      'pillow-l_trns.png': [559, 0],
      'skimage-logo.png': [0, 0], // has an alpha channel, fully opaque
    };
    expect([transparent, partial]).toEqual(counts[name]);
  });

  it('keeps the palette colour under a transparent index (green, not a background)', async () => {
    const img = await decodeImage(path.join(IMAGES, 'pillow-p_trns_single.png'));
    const rgba = await storedRgba(path.join(IMAGES, 'pillow-p_trns_single.png'));
    const p = rgba.findIndex((_, i) => i % 4 === 3 && rgba[i] === 0) >> 2;
    expect([...img.data.subarray(p * 3, p * 3 + 3)]).toEqual([0, 255, 52]);
  });
});

describe('other formats', () => {
  const source = path.join(IMAGES, 'pillow-hopper.png');
  let reference: Buffer;

  it.each([
    ['webp', { lossless: true }, 0],
    ['tiff', { compression: 'lzw' }, 0],
    ['avif', { lossless: true }, 0],
    ['avif', { quality: 90 }, 3],
    ['gif', {}, 5],
  ] as const)('%s %j decodes to the same picture', async (format, options, tolerance) => {
    reference ??= (await decodeImage(source)).data;
    const file = path.join(tmp, `hopper-${format}-${Object.values(options).join('')}.${format}`);
    await (sharp(source) as any)[format](options).toFile(file);
    const img = await decodeImage(file);
    expect([img.width, img.height]).toEqual([128, 128]);
    const diff = meanAbsDiff(img.data, reference);
    if (tolerance === 0) expect(diff).toBe(0);
    else expect(diff).toBeLessThan(tolerance);
  });

  it('takes the first frame of an animated GIF', async () => {
    const w = 8;
    const h = 8;
    const frames = Buffer.alloc(w * h * 2 * 3);
    for (let i = 0; i < w * h; i++) {
      frames[i * 3] = 255; // frame 1 red
      frames[(w * h + i) * 3 + 2] = 255; // frame 2 blue
    }
    const file = path.join(tmp, 'two-frames.gif');
    await sharp(frames, { raw: { width: w, height: h * 2, channels: 3, pageHeight: h } as any }).gif({ delay: [100, 100] }).toFile(file);
    expect((await sharp(file).metadata()).pages).toBe(2);
    const img = await decodeImage(file);
    expect([img.width, img.height]).toEqual([w, h]);
    for (let p = 0; p < w * h; p++) expect([...img.data.subarray(p * 3, p * 3 + 3)]).toEqual([255, 0, 0]);
  });

  it('decodes from a Buffer, naming it in errors', async () => {
    const bytes = fs.readFileSync(path.join(IMAGES, 'skimage-chelsea.png'));
    const img = await decodeImage(bytes, { name: 'chelsea-in-memory' });
    expect(sha256(img.data)).toBe(PILLOW_RGB['skimage-chelsea.png'][2]);
    await expect(decodeImage(bytes.subarray(0, 100), { name: 'chelsea-in-memory' })).rejects.toThrow(/^chelsea-in-memory: /);
  });
});

describe('errors name the file and give sharp\'s reason', () => {
  async function failure(file: string, options = {}): Promise<Img2PromptError> {
    const err = await decodeImage(file, options).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Img2PromptError);
    expect((err as Img2PromptError).file).toBe(file);
    expect((err as Error).message.startsWith(`${file}: `)).toBe(true);
    return err as Img2PromptError;
  }

  it('truncated PNG', async () => {
    const bytes = fs.readFileSync(path.join(IMAGES, 'skimage-coffee.png'));
    const file = path.join(tmp, 'truncated.png');
    fs.writeFileSync(file, bytes.subarray(0, bytes.length >> 1));
    expect((await failure(file)).reason).toMatch(/^cannot decode image: corrupt or truncated pixel data \(header reads png 600x400\)/);
  });

  it('truncated JPEG', async () => {
    const bytes = fs.readFileSync(path.join(IMAGES, 'skimage-rocket.jpg'));
    const file = path.join(tmp, 'truncated.jpg');
    fs.writeFileSync(file, bytes.subarray(0, bytes.length >> 1));
    expect((await failure(file)).reason).toMatch(/^cannot decode image: corrupt or truncated pixel data \(header reads jpeg \d+x\d+\)/);
  });

  it('a text file', async () => {
    const file = path.join(tmp, 'notes.png');
    fs.writeFileSync(file, 'this is not an image\n');
    expect((await failure(file)).reason).toBe('not a supported image (PNG, JPEG, WebP, AVIF, TIFF, GIF)');
  });

  it('an empty file and a missing one', async () => {
    const empty = path.join(tmp, 'empty.jpg');
    fs.writeFileSync(empty, '');
    expect((await failure(empty)).reason).toBe('empty file (0 bytes)');
    expect((await failure(path.join(tmp, 'nope.png'))).reason).toBe('no such file');
  });

  it('an image over the pixel limit, with its size', async () => {
    const file = path.join(IMAGES, 'skimage-chelsea.png'); // 451x300 = 135,300 pixels
    const err = await failure(file, { maxPixels: 100_000 });
    expect(err.reason).toBe('451x300 = 135,300 pixels is over the limit of 100,000 pixels (maxPixels, --max-pixels)');
    await expect(decodeImage(file, { maxPixels: 135_300 })).resolves.toMatchObject({ width: 451, height: 300 });
  });

  it('rejects a bad maxPixels option', async () => {
    await expect(decodeImage(path.join(IMAGES, 'pillow-hopper.png'), { maxPixels: 0 })).rejects.toThrow(
      new RangeError('decodeImage(): Expected an integer >= 1 for maxPixels but received 0'),
    );
  });
});

/** A PNG written by hand, for layouts sharp does not write (1-bit grey, grey + tRNS colour, RGB + tRNS). */
function handPng(width: number, height: number, bitDepth: number, colourType: number, rows: Uint8Array[], trns?: number[]): Buffer {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (b: Buffer) => {
    let c = 0xffffffff;
    for (const x of b) c = crcTable[(c ^ x) & 0xff]! ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const out = Buffer.alloc(body.length + 8);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(crc(body), body.length + 4);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([bitDepth, colourType, 0, 0, 0], 8);
  const raw = Buffer.concat(rows.map((r) => Buffer.concat([Buffer.of(0), Buffer.from(r)])));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    ...(trns ? [chunk('tRNS', Buffer.from(Uint16Array.from(trns, (v) => ((v & 0xff) << 8) | (v >> 8)).buffer))] : []),
    chunk('IDAT', zlib.deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

describe('options for the reference pipelines: exif, alpha, PIL mode', () => {
  it("exif 'ignore' keeps the stored (sideways) pixels; 'apply' is the default", async () => {
    const file = path.join(IMAGES, 'pillow-hopper_orientation_6.jpg');
    const stored = await sharp(file).raw().toBuffer();
    const ignored = await decodeImage(file, { exif: 'ignore' });
    expect(sha256(ignored.data)).toBe(sha256(stored));
    expect(sha256((await decodeImage(file)).data)).toBe(sha256((await decodeImage(file, { exif: 'apply' })).data));
    expect(sha256((await decodeImage(file)).data)).not.toBe(sha256(stored));
    await expect(decodeImage(file, { exif: 'rotate' as never })).rejects.toThrow(
      new RangeError('decodeImage(): Expected one of "apply", "ignore" for exif but received "rotate"'),
    );
  });

  it("alpha 'keep' gives RGBA as stored for images with transparency, RGB for the others", async () => {
    const rgba = path.join(IMAGES, 'pillow-pil123rgba.png');
    const kept = await decodeImage(rgba, { alpha: 'keep' });
    expect(kept.channels).toBe(4);
    expect(sha256(kept.data)).toBe(sha256(await storedRgba(rgba)));
    expect((await decodeImage(rgba)).channels).toBe(3);
    expect((await decodeImage(path.join(IMAGES, 'pillow-hopper.jpg'), { alpha: 'keep' })).channels).toBe(3);
    // A grey PNG with a transparent colour (tRNS): RGBA too, grey replicated, alpha 0 on that colour.
    const trns = await decodeImage(path.join(IMAGES, 'pillow-l_trns.png'), { alpha: 'keep' });
    expect(trns.channels).toBe(4);
    const px = Array.from({ length: trns.width * trns.height }, (_, i) => trns.data.subarray(i * 4, i * 4 + 4));
    expect(px.every((p) => p[0] === p[1] && p[1] === p[2])).toBe(true);
    expect(px.some((p) => p[3] === 0) && px.some((p) => p[3] === 255)).toBe(true);
  });

  it('reports the PIL mode family of the shared images', async () => {
    const expected: Record<string, string> = {
      'pillow-p_trns_single.png': 'P',
      'pillow-pil123rgba.png': 'RGBA',
      'skimage-logo.png': 'RGBA',
      'pillow-l_trns.png': 'RGB', // PIL mode L: the tRNS colour is info, not an alpha channel
      'pillow-i_trns.png': 'RGB', // I;16
      'pillow-pil_sample_cmyk.jpg': 'RGB', // CMYK
      'pillow-hopper_gray.jpg': 'RGB', // L
      'skimage-rocket.jpg': 'RGB',
    };
    for (const [name, mode] of Object.entries(expected)) {
      expect((await decodeImage(path.join(IMAGES, name), { alpha: 'keep' })).pilMode, name).toBe(mode);
    }
  });

  it('tells a PNG transparent colour from an alpha channel by the PNG header (files and buffers)', async () => {
    const grey = [Uint8Array.of(0, 100, 200, 255), Uint8Array.of(255, 200, 100, 0)];
    const rgb = grey.map((r) => Uint8Array.from([...r].flatMap((v) => [v, 255 - v, 7])));
    const greyAlpha = grey.map((r) => Uint8Array.from([...r].flatMap((v) => [v, v])));
    const oneBit = [Uint8Array.of(0b10100000), Uint8Array.of(0b01010000)];
    const cases: [string, Buffer, string, number][] = [
      ['grey + tRNS colour', handPng(4, 2, 8, 0, grey, [100]), 'RGB', 4],
      ['RGB + tRNS colour', handPng(4, 2, 8, 2, rgb, [0, 255, 7]), 'RGB', 4],
      ['grey + alpha', handPng(4, 2, 8, 4, greyAlpha), 'RGBA', 4],
      ['1-bit grey', handPng(4, 2, 1, 0, oneBit), 'P', 3],
      ['plain grey', handPng(4, 2, 8, 0, grey), 'RGB', 3],
    ];
    for (const [what, png, mode, channels] of cases) {
      const file = path.join(tmp, `${what.replace(/\W+/g, '-')}.png`);
      fs.writeFileSync(file, png);
      for (const input of [file, png]) {
        const img = await decodeImage(input, { alpha: 'keep' });
        expect([img.pilMode, img.channels], what).toEqual([mode, channels]);
      }
    }
  });

  it('GIF → P, WebP with alpha → RGBA', async () => {
    const rgba = Buffer.alloc(8 * 4 * 4, 90);
    const raw = { raw: { width: 8, height: 4, channels: 4 as const } };
    const gif = await sharp(rgba, raw).gif().toBuffer();
    const webp = await sharp(rgba, raw).webp({ lossless: true }).toBuffer();
    expect((await decodeImage(gif, { alpha: 'keep' })).pilMode).toBe('P');
    expect((await decodeImage(webp, { alpha: 'keep' })).pilMode).toBe('RGBA');
    expect((await decodeImage(await sharp(rgba, raw).removeAlpha().webp().toBuffer())).pilMode).toBe('RGB');
  });
});

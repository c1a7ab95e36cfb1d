import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeImage, type DecodedImage } from '../src/image/decode.js';
import {
  ClipTransform, clipGeometry, clipPreprocess, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, type ClipPreprocessOptions, type PillowPassOrder,
} from '../src/image/clip-transform.js';
import { native } from '../src/native/addon.js';
import { asset, KAGGLE_SAMPLE } from './helpers/paths.js';
import {
  axisFilter, compositeOntoWhite, referenceClipPreprocess, referenceGeometry, referencePaletteOpenClip, referenceRgbaOpenClip,
} from './reference/pil-bicubic.js';

const f32 = Math.fround;
const MEAN = Float32Array.from(OPENAI_CLIP_MEAN);
const STD = Float32Array.from(OPENAI_CLIP_STD);
/** One 8-bit level in normalised units, at the channel with the smallest std: 1/255/0.2613 = 0.0150. */
const ONE_LEVEL = 1 / 255 / Math.min(...STD);
/**
 * Native (float32, like torch) vs reference (float64) when both resample identically: three float32
 * roundings (u/255, - mean, / std), each within 2^-24 relative of operands up to |u/255/std| + |mean/std|
 * + |result| < 8, so < 8 * 3 * 2^-24 = 1.4e-6 in the worst case; 5e-7 covers what the values reach.
 */
const FLOAT32_TOLERANCE = 5e-7;

/** torch's ToTensor + Normalize of one 8-bit level, in float32 arithmetic. */
const normalised = (u: number, c: number) => f32(f32(f32(f32(u) / 255) - MEAN[c]) / STD[c]);

type Pixels = { data: Uint8Array; width: number; height: number } & Partial<Pick<DecodedImage, 'channels' | 'pilMode'>>;

async function run(img: Pixels, size: number, options: PillowPassOrder | ClipPreprocessOptions = {}) {
  const out = new Float32Array(3 * size * size);
  const given = typeof options === 'string' ? { passOrder: options } : options;
  await clipPreprocess(img.data, img.width, img.height, size, MEAN, STD, out, 0, { channels: img.channels, pilMode: img.pilMode, ...given });
  return out;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): { max: number; count: number } {
  expect(a.length).toBe(b.length);
  let max = 0;
  let count = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (d > max) max = d;
    if (d > 1e-5) count++;
  }
  return { max, count };
}

/** The 8-bit crop behind normalised output (exact: the levels are 1/255/std ≈ 0.015 apart). */
function levelsOf(out: Float32Array, size: number): Uint8Array {
  const hwc = new Uint8Array(3 * size * size);
  for (let c = 0; c < 3; c++) {
    for (let p = 0; p < size * size; p++) {
      const u = (out[c * size * size + p] * STD[c] + MEAN[c]) * 255;
      const level = Math.round(u);
      if (Math.abs(u - level) > 1e-3) throw new Error(`value ${out[c * size * size + p]} is not an 8-bit level`);
      hwc[p * 3 + c] = level;
    }
  }
  return hwc;
}

/** Bitwise equality of float arrays (vitest's toEqual walks large arrays slowly). */
const sameBits = (a: Float32Array, b: Float32Array) =>
  a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

function randomImage(width: number, height: number, seed: number) {
  const data = new Uint8Array(width * height * 3);
  let s = seed >>> 0;
  for (let i = 0; i < data.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    // Half noise, half smooth gradients: noise stresses the rounding, gradients the geometry.
    data[i] = (i >> 7) % 2 ? s >>> 24 : ((i % (width * 3)) + Math.floor(i / (width * 3)) * 3) & 255;
  }
  return { data, width, height };
}

const listImages = (dir: string) => fs.readdirSync(dir).filter((f) => !f.startsWith('LICENSE')).map((f) => path.join(dir, f));
const ALL = [...listImages(asset('images')), ...listImages(path.join(KAGGLE_SAMPLE, 'images'))];
const decoded = new Map<string, DecodedImage>();
const decode = async (file: string) => decoded.get(file) ?? decoded.set(file, await decodeImage(file)).get(file)!;

describe('hand-computed cases', () => {
  // Worked by hand from PIL's algorithm:
  // 4x2 image, N = 1: short side 2 → 1, long side int(1 * 4 / 2) = 2, so PIL resizes to 2x1; the crop
  // offset is round((2 - 1) / 2) = round(0.5) = 0 (half to even). Horizontal pass first (the height
  // loses 1 pixel, the width 2). Output column 0: centre (0 + 0.5) * 2 = 1, kernel stretched x2,
  // support 4, inputs 0..3 at distances (j + 0.5 - 1) / 2 = -0.25, 0.25, 0.75, 1.25:
  //   K(0.25) = 1.5 * 0.25^3 - 2.5 * 0.25^2 + 1 = 0.8671875, K(0.75) = 0.2265625,
  //   K(1.25) = -0.5 * 1.25^3 + 2.5 * 1.25^2 - 4 * 1.25 + 2 = -0.0703125; sum 1.890625.
  // Vertical 2 → 1: centre 1, inputs 0 and 1 at ±0.25 → equal weights 0.5.
  //   R: row 0 [0, 100, 200, 255] → (86.71875 + 45.3125 - 17.9296875) / 1.890625 = 60.35 → 60;
  //      row 1 all 255 → 255; then (60 + 255) / 2 = 157.5 → 158 (PIL rounds halves up).
  //   G: 50 everywhere → 50.   B: row 0 255, row 1 0 → 127.5 → 128.
  const image = {
    width: 4,
    height: 2,
    data: Uint8Array.from([0, 50, 255, 100, 50, 255, 200, 50, 255, 255, 50, 255, 255, 50, 0, 255, 50, 0, 255, 50, 0, 255, 50, 0]),
  };

  it('the reference weights are the hand-computed ones', () => {
    const w = axisFilter(4, 2, 'float');
    expect(w.first).toEqual([0, 0]);
    const expected = [0.8671875, 0.8671875, 0.2265625, -0.0703125].map((x) => x / 1.890625);
    w.weights[0].forEach((x, i) => expect(x).toBeCloseTo(expected[i], 14));
    w.weights[1].forEach((x, i) => expect(x).toBeCloseTo(expected[3 - i], 14));
  });

  it('4x2 → N=1 gives R 158, G 50, B 128', async () => {
    expect(clipGeometry(4, 2, 1)).toEqual({ resizedWidth: 2, resizedHeight: 1, left: 0, top: 0 });
    const expected = [normalised(158, 0), normalised(50, 1), normalised(128, 2)];
    expect([...(await run(image, 1))]).toEqual(expected);
    for (const order of ['pillow13', 'pillow12.2', 'pillow12.1'] as const) expect([...(await run(image, 1, order))]).toEqual(expected);
    const ref = referenceClipPreprocess(image.data, 4, 2, { size: 1, mean: MEAN, std: STD });
    expect(maxAbsDiff(ref, expected).max).toBeLessThan(FLOAT32_TOLERANCE);
  });

  it('4x2 → N=2 is a crop only, at column round(1) = 1', async () => {
    const out = await run(image, 2);
    // R plane: rows [100, 200] and [255, 255]; G all 50; B [255, 255] and [0, 0].
    const expected = [[100, 200, 255, 255], [50, 50, 50, 50], [255, 255, 0, 0]].flatMap((plane, c) => plane.map((u) => normalised(u, c)));
    expect([...out]).toEqual(expected);
  });

  it('5x2 → N=2 crops at round(1.5) = 2 (half to even), 7x2 at round(2.5) = 2', async () => {
    const five = { width: 5, height: 2, data: Uint8Array.from({ length: 30 }, (_, i) => (i % 3 === 0 ? (i / 3) * 10 : 0)) };
    // R of row 0 is 0, 10, 20, 30, 40 and row 1 50..90: columns 2 and 3.
    expect([...(await run(five, 2)).subarray(0, 4)]).toEqual([20, 30, 70, 80].map((u) => normalised(u, 0)));
    expect(clipGeometry(7, 2, 2).left).toBe(2);
    expect(clipGeometry(9, 2, 2).left).toBe(4); // round(3.5) = 4
  });
});

describe('per-processor rules, hand-computed', () => {
  /** transformers' fused rescale + normalize of one 8-bit level, in float32 arithmetic. */
  const hfNormalised = (u: number, c: number) => f32(f32(u - f32(MEAN[c] * 255)) / f32(STD[c] * 255));
  const rgbOf = (out: Float32Array, norm: (u: number, c: number) => number) =>
    [0, 1, 2].map((c) => {
      const level = [...Array(256).keys()].find((u) => norm(u, c) === out[c]);
      if (level === undefined) throw new Error(`${out[c]} is no 8-bit level of channel ${c}`);
      return level;
    });

  // 2x2 RGBA → N=1: both axes shrink 2 → 1, each output the mean of its two inputs (weights 1/2 in both
  // resamplers), rounded after each pass. Opaque red and green on the left, transparent blue and black
  // on the right:
  //   open_clip (PIL resizes RGBA premultiplied): red row (255,0,0,255)+(0,0,0,0) → (128,0,0,128),
  //     green row → (0,128,0,128), then (64,64,0,128); divided back by alpha 128: 255 * 64 // 128 = 127.
  //   stored colours (alpha dropped): red + blue (0,0,255) → (128,0,128), green + black → (0,128,0),
  //     then (64,64,64): the blue stored under a transparent pixel leaks into the picture.
  //   hf (onto white first): (255,128,128), (128,255,128) → (192,192,128).
  const rgba = {
    width: 2, height: 2, channels: 4 as const,
    data: Uint8Array.from([255, 0, 0, 255, 0, 0, 255, 0, 0, 255, 0, 255, 0, 0, 0, 0]),
  };

  it('open_clip resizes an RGBA image premultiplied, as PIL does: 2x2 → (127, 127, 0)', async () => {
    expect(rgbOf(await run({ ...rgba, pilMode: 'RGBA' }, 1, { processor: 'open_clip' }), normalised)).toEqual([127, 127, 0]);
  });

  it('open_clip ignores a transparent colour that PIL keeps out of the pixels (tRNS): (64, 64, 64)', async () => {
    // pilMode RGB with 4 channels: a grey or RGB PNG with a tRNS colour.
    expect(rgbOf(await run({ ...rgba, pilMode: 'RGB' }, 1, { processor: 'open_clip' }), normalised)).toEqual([64, 64, 64]);
  });

  it('hf composites onto white before resizing: (192, 192, 128)', async () => {
    expect(rgbOf(await run({ ...rgba, pilMode: 'RGBA' }, 1, { processor: 'hf' }), hfNormalised)).toEqual([192, 192, 128]);
  });

  it('without a resize, open_clip keeps the stored colours and hf composites (N = 2)', async () => {
    const oc = await run({ ...rgba, pilMode: 'RGBA' }, 2, { processor: 'open_clip' });
    const hf = await run({ ...rgba, pilMode: 'RGBA' }, 2, { processor: 'hf' });
    // Pixel (1, 0) is blue with alpha 0; (1, 1) black with alpha 0.
    expect([oc[1], oc[4 + 1], oc[8 + 1]]).toEqual([normalised(0, 0), normalised(0, 1), normalised(255, 2)]);
    expect([hf[1], hf[4 + 1], hf[8 + 1]]).toEqual([hfNormalised(255, 0), hfNormalised(255, 1), hfNormalised(255, 2)]);
    expect([hf[0], hf[4], hf[8]]).toEqual([hfNormalised(255, 0), hfNormalised(0, 1), hfNormalised(0, 2)]);
  });

  it('hf composites half-transparent pixels as PIL.Image.alpha_composite rounds them', async () => {
    // v * a / 255 + 255 * (1 - a / 255): (200, a 128) → 227.39 → 227; (10, a 1) → 254.04 → 254;
    // (0, a 254) → 1.0 → 1; (255, a 77) → 255.
    const img = { width: 2, height: 2, channels: 4 as const, data: Uint8Array.from([200, 10, 0, 128, 10, 0, 255, 1, 0, 0, 0, 254, 255, 255, 255, 77]) };
    const out = await run(img, 2, { processor: 'hf' });
    const plane = (c: number) => [0, 1, 2, 3].map((p) => rgbOf(Float32Array.of(out[p], out[4 + p], out[8 + p]), hfNormalised)[c]);
    expect(plane(0)).toEqual([227, 254, 1, 255]);
    expect(plane(1)).toEqual([Math.round(10 * 128 / 255 + 127), 254, 1, 255]);
  });

  it('open_clip resizes palette (and 1-bit) images with nearest neighbour, as PIL does', async () => {
    // 3x3 → N=2: the source position starts at 1.5 / 2 and steps by 1.5: 0.75 → 0, 2.25 → 2.
    const data = Uint8Array.from({ length: 27 }, (_, i) => (i % 3 === 0 ? (i / 3) * 20 : 7));
    const out = await run({ width: 3, height: 3, data, pilMode: 'P' }, 2, { processor: 'open_clip' });
    expect([...out.subarray(0, 4)]).toEqual([0, 40, 120, 160].map((u) => normalised(u, 0)));
    // The same pixels as an RGB image are resized bicubic: every output mixes its neighbours.
    const bicubic = await run({ width: 3, height: 3, data, pilMode: 'RGB' }, 2, { processor: 'open_clip' });
    expect([...bicubic.subarray(0, 4)]).not.toEqual([...out.subarray(0, 4)]);
    // hf converts to RGB before its resize, so a palette is nothing special there.
    expect(sameBits(await run({ width: 3, height: 3, data, pilMode: 'P' }, 2, { processor: 'hf' }), await run({ width: 3, height: 3, data }, 2, { processor: 'hf' }))).toBe(true);
  });

  it('hf crops one column left of open_clip when (len - N) / 2 ends in .5 with an odd integer part', async () => {
    expect(clipGeometry(640, 427, 224, 'hf')).toEqual({ resizedWidth: 335, resizedHeight: 224, left: 55, top: 0 });
    expect(clipGeometry(640, 427, 224, 'open_clip').left).toBe(56);
    expect(clipGeometry(427, 640, 224, 'hf')).toEqual({ resizedWidth: 224, resizedHeight: 335, left: 0, top: 55 });
    expect(clipGeometry(162, 150, 224, 'hf').left).toBe(8); // 8.5: both give 8
    // 5x2 → N=2 (no resize): R of row 0 is 0, 10, 20, 30, 40: hf crops columns 1 and 2.
    const five = { width: 5, height: 2, data: Uint8Array.from({ length: 30 }, (_, i) => (i % 3 === 0 ? (i / 3) * 10 : 0)) };
    expect([...(await run(five, 2, { processor: 'hf' })).subarray(0, 2)]).toEqual([10, 20].map((u) => hfNormalised(u, 0)));
    let s = 777;
    for (let i = 0; i < 5000; i++) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      const [w, h, n] = [1 + (s % 3000), 1 + ((s >>> 12) % 3000), [1, 2, 224, 336][i % 4]];
      expect(clipGeometry(w, h, n, 'hf')).toEqual(referenceGeometry(w, h, n, 'floor'));
    }
  });
});

describe('geometry (torchvision Resize(N) + CenterCrop(N))', () => {
  it('matches known cases', () => {
    expect(clipGeometry(640, 427, 224)).toEqual({ resizedWidth: 335, resizedHeight: 224, left: 56, top: 0 }); // 55.5 → 56
    expect(clipGeometry(451, 300, 224)).toEqual({ resizedWidth: 336, resizedHeight: 224, left: 56, top: 0 });
    expect(clipGeometry(300, 451, 224)).toEqual({ resizedWidth: 224, resizedHeight: 336, left: 0, top: 56 });
    expect(clipGeometry(162, 150, 224)).toEqual({ resizedWidth: 241, resizedHeight: 224, left: 8, top: 0 }); // 8.5 → 8
    expect(clipGeometry(224, 224, 224)).toEqual({ resizedWidth: 224, resizedHeight: 224, left: 0, top: 0 });
    expect(clipGeometry(1, 100_000, 336)).toEqual({ resizedWidth: 336, resizedHeight: 33_600_000, left: 0, top: 16_799_832 });
  });

  it('agrees with the reference on 20,000 sizes', () => {
    let s = 12345;
    for (let i = 0; i < 20_000; i++) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      const w = 1 + (s % 3000);
      const h = 1 + ((s >>> 12) % 3000);
      const n = [1, 2, 224, 256, 336, 448][i % 6];
      expect(clipGeometry(w, h, n)).toEqual(referenceGeometry(w, h, n));
    }
  });
});

// sha256 of the 224x224 RGB crop that Pillow 13.0.0 + torchvision's rules produce from the same
// decoded pixels (Image.resize(BICUBIC) then crop), i.e. what open_clip feeds the model. Not listed:
// the CMYK JPEG and the 16-bit PNG, which Pillow decodes differently (see image-decode.test.ts).
const PILLOW_CROP_224: Record<string, string> = {
  'pillow-hopper.jpg': '35c80ebe2e3df7473f6ceeb515f06311b52a7e47a4f7214c3b9e61a5be3dc4c0',
  'pillow-hopper.png': '55cecddb2f47d12acb65e19f2727e4619174a914b948983e5fde5a54337219ad',
  'pillow-hopper_gray.jpg': '7f22eddd428cfb3bdebef313acec4de2829ae8a53dd41a2f68aff4be44f97b4c',
  'pillow-hopper_orientation_6.jpg': '69214913642f5ed7d0ce536d6078a769c9c78c822cf7e476cebbee01ae769795',
  'pillow-l_trns.png': '39785befc62d0a2ee700a3885cfec6e0c2feff72c3d89e5d9e14685dc6f5b207',
  'pillow-p_trns_single.png': '65ecbd3d86b3baad6d191cf33c51959a06b4fe0ba484ef4e6f49b5f0f93e9e43',
  'pillow-pil123rgba.png': '94f75f10ed9f15fe651b17c9e1269309c598199a3a644b8d1cb73b34eabde5c1',
  'pillow-pil_sample_rgb.jpg': '44c663bac8e15a1e6dc2dae47501cdc11ba220f63176c2929cfac819e4a48c74',
  'skimage-camera.png': '3fe5dae2827a386969ed45cf3c22c70e841ce14693d8e9693047afb07038409a',
  'skimage-chelsea.png': '81151d301d62f5b5db5fb2467dc66816b4d1317bd7a27bdcf1419761210d3eae',
  'skimage-coffee.png': '701bd12171c9099c010edac2e82de591b8f4924ba1d3cf033b6bb89098fd4793',
  'skimage-logo.png': '19f92c1e8a0b4a60f26979cf974fdce062efbb0ce3c58a88f5df753c964ef317',
  'skimage-rocket.jpg': 'b89781811d257cd999ea6940132fc8a7d733543f8d9be4674fcaa20647030925',
  '20057f34d.png': '83d4e39344f91c65f4d5c2c27e801d9d11b24e8d611f4976d1b64cd38592accd',
  '227ef0887.png': '7598809053e44c804b60110cde3b0e96461ed4a0019ada2f910b87fec04a2ae8',
  '92e911621.png': '032aa7f71b98707c30a51d1bbefcda811de080a1fd7bede9c676a9c3802aa8a8',
  'a4e1c55a9.png': 'a93392148b598b686ca924d05eee2dbfef0a39c7940ba2d2c42d5fa982f68895',
  'c98f79f71.png': '2190b27f0bcfe19196ce0bf43a75c71d3e5a6f25d7875c70132d5c5d004dac7b',
  'd8edf2e40.png': '7aa044a897a728d8c04b48bdd05463cf271f9ceecd99f2713de385b0bef445f9',
  'f27825b2c.png': 'ba6c72f54cae58a4acc57c9f7afb48c3d13e6bf78fff3ba4c33dc0d83c6a1c1e',
};

describe('shared images: native kernel vs Pillow and vs the float64 reference', () => {
  it('reproduces Pillow 13 bit for bit (224, every image Pillow decodes alike)', async () => {
    for (const file of ALL) {
      const expected = PILLOW_CROP_224[path.basename(file)];
      if (!expected) continue;
      // As RGB pixels: this is the bicubic kernel on the same pixels (palette images are resized nearest).
      const levels = levelsOf(await run(await decode(file), 224, { pilMode: 'RGB' }), 224);
      expect(createHash('sha256').update(levels).digest('hex'), path.basename(file)).toBe(expected);
    }
  });

  it.each([224, 336])('matches the reference within float32 rounding at N=%i', async (size) => {
    const lines: string[] = [];
    for (const file of ALL) {
      const img = await decode(file);
      const out = await run(img, size, { pilMode: 'RGB' });
      const exact = maxAbsDiff(out, referenceClipPreprocess(img.data, img.width, img.height, { size, mean: MEAN, std: STD }));
      // With float64 weights instead of PIL's 22-bit ones, an 8-bit rounding flips here and there.
      const float = maxAbsDiff(out, referenceClipPreprocess(img.data, img.width, img.height, { size, mean: MEAN, std: STD, weights: 'float' }));
      lines.push(`${path.basename(file).padEnd(32)} ${exact.max.toExponential(2)}   ${float.max.toFixed(4)} at ${float.count}/${out.length}`);
      expect(exact.max, path.basename(file)).toBeLessThanOrEqual(FLOAT32_TOLERANCE);
      expect(float.max, path.basename(file)).toBeLessThanOrEqual(ONE_LEVEL + FLOAT32_TOLERANCE);
      expect(float.count / out.length, path.basename(file)).toBeLessThan(1e-3);
    }
    console.log(`N=${size}: max |native - reference| (22-bit weights)   (float64 weights: max, values differing)\n${lines.join('\n')}`);
  });
});

describe('synthetic images of every shape and each Pillow pass order', () => {
  const shapes: [number, number, number][] = [
    [1, 1, 224], [1, 50, 24], [50, 1, 24], [7, 5, 3], [224, 224, 224], [225, 224, 224], [500, 37, 224],
    [37, 500, 224], [640, 427, 336], [427, 640, 336], [90, 1000, 64], [1000, 90, 64], [33, 4000, 32], [129, 131, 256],
  ];
  for (const order of ['pillow13', 'pillow12.2', 'pillow12.1'] as const) {
    it(`${order}: native = reference (22-bit weights) on ${shapes.length} shapes`, async () => {
      let worst = 0;
      for (const [i, [w, h, n]] of shapes.entries()) {
        const img = randomImage(w, h, i + 1);
        const out = await run(img, n, order);
        const { max } = maxAbsDiff(out, referenceClipPreprocess(img.data, w, h, { size: n, mean: MEAN, std: STD, passOrder: order }));
        expect(max, `${w}x${h} → ${n}`).toBeLessThanOrEqual(FLOAT32_TOLERANCE);
        worst = Math.max(worst, max);
      }
      console.log(`${order}: worst max abs difference ${worst.toExponential(2)}`);
    });
  }

  it('hf: native = reference (torch int16 weights, horizontal first, truncated crop) on the same shapes', async () => {
    let worst = 0;
    for (const [i, [w, h, n]] of shapes.entries()) {
      const img = randomImage(w, h, i + 1);
      const out = await run(img, n, { processor: 'hf' });
      const { max } = maxAbsDiff(out, referenceClipPreprocess(img.data, w, h, { size: n, mean: MEAN, std: STD, processor: 'hf' }));
      expect(max, `${w}x${h} → ${n}`).toBeLessThanOrEqual(FLOAT32_TOLERANCE);
      worst = Math.max(worst, max);
    }
    // torch's weights are coarser than Pillow's: on noise the two resamplers part by a level here and there.
    const noise = randomImage(500, 37, 3);
    const apart = maxAbsDiff(
      await run(noise, 224, { processor: 'hf' }),
      referenceClipPreprocess(noise.data, 500, 37, { size: 224, mean: MEAN, std: STD, processor: 'hf', weights: 'fixed22' }),
    );
    console.log(`hf: worst max abs difference ${worst.toExponential(2)}; torch vs Pillow weights on noise: ${apart.count} values apart`);
    expect(apart.count).toBeGreaterThan(0);
  });

  it('transparency and palettes on every shape: hf composites, open_clip premultiplies RGBA and resizes palettes nearest', async () => {
    let worst = 0;
    for (const [i, [w, h, n]] of shapes.entries()) {
      // RGBA noise whose alpha runs through every level, 0 and 255 included.
      const rgba = new Uint8Array(w * h * 4);
      const rgb = randomImage(w, h, i + 11).data;
      for (let p = 0; p < w * h; p++) {
        rgba.set(rgb.subarray(p * 3, p * 3 + 3), p * 4);
        rgba[p * 4 + 3] = p % 7 === 0 ? 0 : p % 5 === 0 ? 255 : (p * 37) & 255;
      }
      const opts = { size: n, mean: MEAN, std: STD };
      const hf = await run({ data: rgba, width: w, height: h, channels: 4, pilMode: 'RGBA' }, n, { processor: 'hf' });
      const composited = await run({ data: compositeOntoWhite(rgba), width: w, height: h }, n, { processor: 'hf' });
      expect(sameBits(hf, composited), `${w}x${h} → ${n} hf`).toBe(true);
      const premultiplied = await run({ data: rgba, width: w, height: h, channels: 4, pilMode: 'RGBA' }, n, { processor: 'open_clip' });
      const a = maxAbsDiff(premultiplied, referenceRgbaOpenClip(rgba, w, h, opts)).max;
      expect(a, `${w}x${h} → ${n} RGBA`).toBeLessThanOrEqual(FLOAT32_TOLERANCE);
      const palette = await run({ data: rgb, width: w, height: h, pilMode: 'P' }, n, { processor: 'open_clip' });
      const b = maxAbsDiff(palette, referencePaletteOpenClip(rgb, w, h, opts)).max;
      expect(b, `${w}x${h} → ${n} P`).toBeLessThanOrEqual(FLOAT32_TOLERANCE);
      // A transparent colour (tRNS) is no alpha channel to PIL: open_clip reads such an image as RGB.
      const keyed = await run({ data: rgba, width: w, height: h, channels: 4, pilMode: 'RGB' }, n, { processor: 'open_clip' });
      expect(sameBits(keyed, await run({ data: rgb, width: w, height: h }, n, { processor: 'open_clip' })), `${w}x${h} → ${n} tRNS`).toBe(true);
      worst = Math.max(worst, a, b);
    }
    console.log(`RGBA (premultiplied) and palette (nearest) vs reference: worst ${worst.toExponential(2)}`);
  });

  it('the pass orders really differ where Pillow 13 changed them (images over 2:1 tall, shrinking)', async () => {
    // A natural tall strip: the left 150 columns of coffee (150x400 → 224x597 upscales, so use N=64).
    const coffee = await decode(asset('images', 'skimage-coffee.png'));
    const strip = new Uint8Array(150 * 400 * 3);
    for (let y = 0; y < 400; y++) strip.set(coffee.data.subarray(y * 600 * 3, (y * 600 + 150) * 3), y * 150 * 3);
    const img = { data: strip, width: 150, height: 400 };
    const natural = maxAbsDiff(await run(img, 64, 'pillow13'), await run(img, 64, 'pillow12.1'));
    // Noise: bicubic overshoot gets clamped to 0..255 after whichever pass runs first, so it moves more.
    const noise = randomImage(90, 1000, 99);
    const noisy = maxAbsDiff(await run(noise, 64, 'pillow13'), await run(noise, 64, 'pillow12.1'));
    console.log(
      `pillow13 vs pillow12.1 order: natural 150x400 → 64: max ${natural.max.toFixed(4)} (${(natural.max / ONE_LEVEL).toFixed(1)} levels) ` +
        `at ${natural.count}/${3 * 64 * 64} values; noise 90x1000: max ${noisy.max.toFixed(4)} at ${noisy.count}`,
    );
    expect(natural.count).toBeGreaterThan(0);
    expect(natural.max).toBeLessThanOrEqual(2 * ONE_LEVEL + FLOAT32_TOLERANCE);
    expect(noisy.count).toBeGreaterThan(0);
    // Landscape and square images: the same order in every version.
    const wide = randomImage(1000, 90, 98);
    expect(maxAbsDiff(await run(wide, 64, 'pillow13'), await run(wide, 64, 'pillow12.1')).count).toBe(0);
  });
});

describe('extreme shapes', () => {
  it('a 1x20000 line resizes to 224x4,480,000 without building that image', async () => {
    const w = 1;
    const h = 20_000;
    const data = new Uint8Array(w * h * 3);
    for (let i = 0; i < w * h; i++) data.set([10, 128, 250], i * 3);
    const t0 = performance.now();
    const out = await run({ data, width: w, height: h }, 224);
    const ms = performance.now() - t0;
    // A constant image stays constant through any normalised filter.
    for (let c = 0; c < 3; c++) {
      const want = normalised([10, 128, 250][c], c);
      expect(out.subarray(c * 224 * 224, (c + 1) * 224 * 224).every((v) => v === want)).toBe(true);
    }
    expect(ms).toBeLessThan(2000); // only the crop's window is computed (the full resize is 3 GB)
  });
});

describe('batch slots', () => {
  it('fills slots concurrently, each equal to a lone run, touching nothing else', async () => {
    const transform = new ClipTransform({ size: 224 });
    const files = ALL.slice(0, 9);
    const per = transform.floatsPerImage;
    const batch = new Float32Array((files.length + 1) * per).fill(Number.NaN);
    const images = await Promise.all(files.map(decode));
    await Promise.all(images.map((img, slot) => transform.into(img, batch, slot)));
    for (const [slot, img] of images.entries()) {
      expect(sameBits(batch.subarray(slot * per, (slot + 1) * per), await run(img, 224))).toBe(true);
    }
    expect(batch.subarray(files.length * per).every(Number.isNaN)).toBe(true);
  });

  it('reads a Buffer slice in place (byteOffset honoured)', async () => {
    const img = randomImage(40, 30, 5);
    const backing = Buffer.alloc(img.data.length + 13, 0xee);
    backing.set(img.data, 13);
    const view = backing.subarray(13);
    expect(sameBits(await run({ data: view, width: 40, height: 30 }, 16), await run(img, 16))).toBe(true);
  });
});

describe('argument checks', () => {
  const rgb = new Uint8Array(4 * 3 * 3);
  const out = new Float32Array(2 * 3 * 2 * 2);

  it('TypeScript wrapper throws before calling native code', () => {
    const call = (...args: unknown[]) => () => (clipPreprocess as (...a: unknown[]) => unknown)(...args);
    expect(call(Array.from(rgb), 4, 3, 2, MEAN, STD, out, 0)).toThrow(/Expected a Uint8Array of RGB8 pixels .* for pixels/);
    expect(call(rgb, 0, 3, 2, MEAN, STD, out, 0)).toThrow(/Expected an integer between 1 and 16777216 for width but received 0/);
    expect(call(rgb, 4, 3.5, 2, MEAN, STD, out, 0)).toThrow(/for height/);
    expect(call(rgb, 3, 3, 2, MEAN, STD, out, 0)).toThrow(/Expected 27 bytes \(3x3x3\) for pixels/);
    expect(call(rgb, 4, 3, 2, MEAN, STD, out, 0, { channels: 4 })).toThrow(/Expected 48 bytes \(4x3x4\) for pixels/);
    expect(call(rgb, 4, 3, 2, MEAN, STD, out, 0, { channels: 2 })).toThrow(/Expected 3 or 4 for channels/);
    expect(call(rgb, 4, 3, 2, MEAN, STD, out, 0, { processor: 'timm' })).toThrow(/processor must be "open_clip", "hf", "hf-pil" or "hf-pil-resize"/);
    expect(call(rgb, 4, 3, 2, MEAN, STD, out, 0, { pilMode: 'CMYK' })).toThrow(/for pilMode/);
    expect(call(rgb, 4, 3, 0, MEAN, STD, out, 0)).toThrow(/for size/);
    expect(call(rgb, 4, 3, 2, [0.5, 0.5, 0.5], STD, out, 0)).toThrow(/for mean/);
    expect(call(rgb, 4, 3, 2, MEAN, Float32Array.of(1, 0, 1), out, 0)).toThrow(/finite positive values for std/);
    expect(call(rgb, 4, 3, 2, MEAN, STD, new Float32Array(11), 0)).toThrow(/for out/);
    expect(call(rgb, 4, 3, 2, MEAN, STD, out, 2)).toThrow(/between 0 and 1 for slot/);
    expect(call(rgb, 4, 3, 2, MEAN, STD, out, 0, { passOrder: 'pillow9' })).toThrow(/for passOrder/);
    expect(() => new ClipTransform({ size: 224, std: [1, 1] })).toThrow(
      new RangeError('new ClipTransform(): Expected three positive numbers (R, G, B) for std but received [1,1]'),
    );
    expect(() => new ClipTransform({ size: 224, processor: 'timm' as never })).toThrow(
      new RangeError('new ClipTransform(): Expected one of "open_clip", "hf", "hf-pil", "hf-pil-resize" for processor but received "timm"'),
    );
    expect(() => new ClipTransform({ size: 224, sise: 336 } as never)).toThrow(new TypeError('new ClipTransform(): unknown option "sise" (did you mean "size"?)'));
  });

  it('native code rejects every bad call itself, without crashing', async () => {
    const raw = (native() as unknown as { clipPreprocess: (...a: unknown[]) => Promise<void> }).clipPreprocess;
    const bad: [string, unknown[]][] = [
      ['too few arguments', [rgb, 4, 3, 2, MEAN, STD, out]],
      ['rgb not a Uint8Array', [new Uint8ClampedArray(36), 4, 3, 2, MEAN, STD, out, 0]],
      ['width not a number', [rgb, '4', 3, 2, MEAN, STD, out, 0]],
      ['width NaN', [rgb, Number.NaN, 3, 2, MEAN, STD, out, 0]],
      ['width fractional', [rgb, 4.5, 3, 2, MEAN, STD, out, 0]],
      ['huge width', [rgb, 2 ** 40, 3, 2, MEAN, STD, out, 0]],
      ['rgb too short', [rgb.subarray(1), 4, 3, 2, MEAN, STD, out, 0]],
      ['size too large', [rgb, 4, 3, 100_000, MEAN, STD, out, 0]],
      ['mean of 2', [rgb, 4, 3, 2, MEAN.subarray(1), STD, out, 0]],
      ['mean Float64Array', [rgb, 4, 3, 2, Float64Array.from(MEAN), STD, out, 0]],
      ['std NaN', [rgb, 4, 3, 2, MEAN, Float32Array.of(1, Number.NaN, 1), out, 0]],
      ['std negative', [rgb, 4, 3, 2, MEAN, Float32Array.of(1, -1, 1), out, 0]],
      ['out too small', [rgb, 4, 3, 2, MEAN, STD, new Float32Array(11), 0]],
      ['slot past the end', [rgb, 4, 3, 2, MEAN, STD, out, 2]],
      ['slot negative', [rgb, 4, 3, 2, MEAN, STD, out, -1]],
      ['rules not an object', [rgb, 4, 3, 2, MEAN, STD, out, 0, 'pillow13']],
      ['pass order unknown', [rgb, 4, 3, 2, MEAN, STD, out, 0, { passOrder: 'pillow9' }]],
      ['pass order not a string', [rgb, 4, 3, 2, MEAN, STD, out, 0, { passOrder: 13 }]],
      ['resampler unknown', [rgb, 4, 3, 2, MEAN, STD, out, 0, { resampler: 'lanczos' }]],
      ['crop unknown', [rgb, 4, 3, 2, MEAN, STD, out, 0, { crop: 'ceil' }]],
      ['alpha unknown', [rgb, 4, 3, 2, MEAN, STD, out, 0, { alpha: 'onto-black' }]],
      ['normalisation unknown', [rgb, 4, 3, 2, MEAN, STD, out, 0, { normalisation: 'none' }]],
      ['channels 2', [rgb, 4, 3, 2, MEAN, STD, out, 0, { channels: 2 }]],
      ['channels 4 for RGB bytes', [rgb, 4, 3, 2, MEAN, STD, out, 0, { channels: 4 }]],
    ];
    for (const [what, args] of bad) expect(() => raw(...args), what).toThrow(/clipPreprocess/);

    // Views of one ArrayBuffer: writing slot 0 would overwrite the pixels being read.
    const shared = new ArrayBuffer(4096);
    const pixels = new Uint8Array(shared, 0, 36);
    expect(() => raw(pixels, 4, 3, 2, MEAN, STD, new Float32Array(shared, 0, 48), 0)).toThrow(/overlaps/);
    await expect(raw(pixels, 4, 3, 2, MEAN, STD, new Float32Array(shared, 64, 48), 0)).resolves.toBeUndefined();

    // A detached buffer reads as empty.
    const gone = new Uint8Array(36);
    structuredClone(gone.buffer, { transfer: [gone.buffer] });
    expect(() => raw(gone, 4, 3, 2, MEAN, STD, out, 0)).toThrow(/holds 0 bytes/);
  });
});

describe('transformers\' PIL-backend processors (hf-pil: center_crop; hf-pil-resize: BLIP\'s whole-image resize)', () => {
  /** A 640x427 gradient with noise: resized to 335x224, the 224 window's margin is 111 (55.5 a side). */
  const wide = { width: 640, height: 427, data: Uint8Array.from({ length: 640 * 427 * 3 }, (_, i) => (i * 37 + ((i / 3) % 640) * 7) & 255) };

  async function preprocess(img: typeof wide, size: number, processor: 'open_clip' | 'hf-pil' | 'hf-pil-resize') {
    const out = new Float32Array(3 * size * size);
    await clipPreprocess(img.data, img.width, img.height, size, MEAN, STD, out, 0, { processor });
    return out;
  }

  it('hf-pil is open_clip\'s Pillow resize with the window one column left when the margin is odd', async () => {
    const half = await preprocess(wide, 224, 'open_clip');
    const floor = await preprocess(wide, 224, 'hf-pil');
    expect(clipGeometry(640, 427, 224, 'open_clip').left).toBe(56);
    expect(clipGeometry(640, 427, 224, 'hf-pil').left).toBe(55);
    let shifted = 0;
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < 224; y++) {
        for (let x = 0; x < 223; x++) if (floor[c * 224 * 224 + y * 224 + x + 1] === half[c * 224 * 224 + y * 224 + x]) shifted++;
      }
    }
    expect(shifted).toBe(3 * 224 * 223);
    expect(floor).not.toEqual(half);
  });

  it('hf-pil-resize resizes the whole image: equal to the cropped transform on a square image, not on a wide one', async () => {
    expect(clipGeometry(640, 427, 224, 'hf-pil-resize')).toEqual({ resizedWidth: 224, resizedHeight: 224, left: 0, top: 0 });
    const square = { width: 300, height: 300, data: wide.data.subarray(0, 300 * 300 * 3) };
    expect(await preprocess(square, 224, 'hf-pil-resize')).toEqual(await preprocess(square, 224, 'open_clip'));
    expect(await preprocess(wide, 224, 'hf-pil-resize')).not.toEqual(await preprocess(wide, 224, 'open_clip'));
  });

  it('the addon refuses an unknown crop rule', () => {
    const addon = native() as unknown as { clipPreprocess: (...a: unknown[]) => Promise<void> };
    const rules = { channels: 3, resampler: 'pillow-bicubic', passOrder: 'pillow13', crop: 'centre', alpha: 'drop', normalisation: 'to-tensor' };
    expect(() => addon.clipPreprocess(wide.data, 640, 427, 224, MEAN, STD, new Float32Array(3 * 224 * 224), 0, rules)).toThrow(/crop/);
  });
});

// An independent, deliberately plain model of CLIP's image preprocessing, used only to check the native
// kernel. Written from the descriptions of the steps, not from native/clip_preprocess.cc:
//
//   torchvision Resize(N, BICUBIC) on a PIL image: the short side becomes N, the long side
//     int(N * long / short); nothing happens when the short side already is N.
//   PIL Image.resize(BICUBIC): separable; for each output sample i along an axis of `in` → `out` samples,
//     scale = in / out, the kernel is stretched by max(scale, 1) (antialiasing when shrinking), its
//     support is 2 * that; the input samples whose centres lie within the support of the output's
//     centre (i + 0.5) * scale contribute with Keys' cubic (a = -0.5) weights, normalised to sum 1.
//     Each pass stores 8-bit pixels: round half up, clamp to 0..255. PIL turns the weights into
//     fixed point with 22 fraction bits first ('fixed22'); 'float' keeps them as float64 to show what
//     that quantisation changes. Pass order: Pillow <= 12.1 horizontal first; 12.2 vertical first for
//     images over 100x taller than wide that lose height; 13 vertical first when the height loses more
//     than twice as many pixels as the width.
//   torchvision CenterCrop(N): offset int(round((len - N) / 2)) with Python's round (half to even).
//   ToTensor + Normalize: (u / 255 - mean) / std, here in float64.
//
// processor 'hf' models transformers' CLIPImageProcessor (torchvision backend) instead: the same taps,
// turned into fixed point with as many fraction bits p (at most 22) as keep the largest weight of the
// whole axis below 2^15 once doubled ('torch16'), horizontal pass first, crop offset
// int((len - N) / 2) (truncated), and (u - 255 mean) / (255 std).
//
// Whole images, one channel plane at a time, with transposes instead of a second kernel: slow and
// simple on purpose.

export type PassOrder = 'pillow13' | 'pillow12.2' | 'pillow12.1';

export type WeightMode = 'fixed22' | 'torch16' | 'float';

export interface ReferenceOptions {
  size: number;
  mean: ArrayLike<number>;
  std: ArrayLike<number>;
  passOrder?: PassOrder;
  /** Default: 'fixed22' for open_clip, 'torch16' for hf. */
  weights?: WeightMode;
  /** Default 'open_clip'. */
  processor?: 'open_clip' | 'hf';
}

/** Python's round(): halves go to the even neighbour. */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const frac = x - f;
  if (frac > 0.5) return f + 1;
  if (frac < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

export function referenceGeometry(width: number, height: number, size: number, crop: 'half-to-even' | 'floor' = 'half-to-even') {
  let resizedWidth = width;
  let resizedHeight = height;
  const short = Math.min(width, height);
  const long = Math.max(width, height);
  if (short !== size) {
    const newLong = Math.trunc((size * long) / short);
    if (width <= height) [resizedWidth, resizedHeight] = [size, newLong];
    else [resizedWidth, resizedHeight] = [newLong, size];
  }
  const offset = (d: number) => (crop === 'floor' ? Math.trunc(d / 2) : roundHalfEven(d / 2));
  return { resizedWidth, resizedHeight, left: offset(resizedWidth - size), top: offset(resizedHeight - size) };
}

/** Keys' cubic convolution kernel with a = -0.5, in its textbook (expanded) form. */
export function keysCubic(x: number): number {
  const a = -0.5;
  const t = Math.abs(x);
  if (t < 1) return (a + 2) * t ** 3 - (a + 3) * t ** 2 + 1;
  if (t < 2) return a * t ** 3 - 5 * a * t ** 2 + 8 * a * t - 4 * a;
  return 0;
}

interface AxisFilter {
  first: number[];
  weights: number[][];
  /** Fraction bits of fixed-point weights (none for 'float'). */
  bits?: number;
}

/** Weights of every output sample of a 1-D resize from `inSize` to `outSize` samples. */
export function axisFilter(inSize: number, outSize: number, mode: WeightMode): AxisFilter {
  const scale = inSize / outSize;
  const stretch = Math.max(scale, 1);
  const support = 2 * stretch;
  const first: number[] = [];
  const weights: number[][] = [];
  for (let i = 0; i < outSize; i++) {
    const centre = (i + 0.5) * scale;
    const lo = Math.max(0, Math.trunc(centre - support + 0.5));
    const hi = Math.min(inSize, Math.trunc(centre + support + 0.5));
    const raw: number[] = [];
    for (let j = lo; j < hi; j++) raw.push(keysCubic((j + 0.5 - centre) / stretch));
    const total = raw.reduce((s, w) => s + w, 0);
    first.push(lo);
    weights.push(raw.map((v) => (total !== 0 ? v / total : v)));
  }
  if (mode === 'float') return { first, weights };
  let bits = 22;
  if (mode === 'torch16') {
    let largest = 0;
    for (const w of weights) for (const v of w) largest = Math.max(largest, v);
    bits = 0;
    while (bits < 22 && Math.floor(largest * 2 ** (bits + 1) + 0.5) < 2 ** 15) bits++;
  }
  const fixed = weights.map((w) => w.map((v) => Math.sign(v) * Math.floor(Math.abs(v) * 2 ** bits + 0.5)));
  return { first, weights: fixed, bits };
}

/** One 8-bit plane, rows × cols. */
interface Plane {
  rows: number;
  cols: number;
  data: Uint8Array;
}

function transpose(p: Plane): Plane {
  const data = new Uint8Array(p.data.length);
  for (let r = 0; r < p.rows; r++) for (let c = 0; c < p.cols; c++) data[c * p.rows + r] = p.data[r * p.cols + c];
  return { rows: p.cols, cols: p.rows, data };
}

/** Resizes every row of `p` to `outCols` samples, storing 8-bit results like PIL. */
function resizeRows(p: Plane, outCols: number, mode: WeightMode): Plane {
  const filter = axisFilter(p.cols, outCols, mode);
  const data = new Uint8Array(p.rows * outCols);
  for (let r = 0; r < p.rows; r++) {
    for (let i = 0; i < outCols; i++) {
      let sum = 0;
      const w = filter.weights[i];
      for (let k = 0; k < w.length; k++) sum += p.data[r * p.cols + filter.first[i] + k] * w[k];
      const bits = filter.bits;
      const level = bits === undefined ? Math.floor(sum + 0.5) : Math.floor((sum + 2 ** (bits - 1)) / 2 ** bits);
      data[r * outCols + i] = Math.min(255, Math.max(0, level));
    }
  }
  return { rows: p.rows, cols: outCols, data };
}

const resizeCols = (p: Plane, outRows: number, mode: WeightMode): Plane =>
  transpose(resizeRows(transpose(p), outRows, mode));

export function verticalFirst(width: number, height: number, newWidth: number, newHeight: number, order: PassOrder): boolean {
  if (order === 'pillow12.1') return false;
  if (order === 'pillow12.2') return height > 100 * width && newHeight < height;
  return height - newHeight > 0 && height - newHeight > 2 * (width - newWidth);
}

/** PIL's Image.resize((newWidth, newHeight), BICUBIC) of one 8-bit plane. */
export function pilResizePlane(p: Plane, newWidth: number, newHeight: number, mode: WeightMode, order: PassOrder): Plane {
  const doX = (q: Plane) => (newWidth !== q.cols ? resizeRows(q, newWidth, mode) : q);
  const doY = (q: Plane) => (newHeight !== q.rows ? resizeCols(q, newHeight, mode) : q);
  return verticalFirst(p.cols, p.rows, newWidth, newHeight, order) ? doX(doY(p)) : doY(doX(p));
}

/** The whole pipeline on an RGB8 HWC image: float64 [3, size, size]. */
export function referenceClipPreprocess(rgb: Uint8Array, width: number, height: number, options: ReferenceOptions): Float64Array {
  const { size } = options;
  const hf = options.processor === 'hf';
  const mode = options.weights ?? (hf ? 'torch16' : 'fixed22');
  // torch always runs the horizontal pass first, as Pillow 12.1 did.
  const order = hf ? 'pillow12.1' : (options.passOrder ?? 'pillow13');
  const g = referenceGeometry(width, height, size, hf ? 'floor' : 'half-to-even');
  const out = new Float64Array(3 * size * size);
  for (let c = 0; c < 3; c++) {
    const plane: Plane = { rows: height, cols: width, data: new Uint8Array(width * height) };
    for (let i = 0; i < width * height; i++) plane.data[i] = rgb[i * 3 + c];
    const resized = pilResizePlane(plane, g.resizedWidth, g.resizedHeight, mode, order);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const u = resized.data[(g.top + y) * resized.cols + g.left + x];
        out[c * size * size + y * size + x] = hf
          ? (u - 255 * options.mean[c]) / (255 * options.std[c])
          : (u / 255 - options.mean[c]) / options.std[c];
      }
    }
  }
  return out;
}

// Transparency and palettes, the way the two pipelines meet them:
//   transformers: PIL.Image.alpha_composite over opaque white, then RGB. Per channel, with 7 extra bits
//     and divisions by 255 rounded as (x + (x >> 8)) >> 8: t = (v a + 255 (255 - a)) 128 + 2^14,
//     out = ((t + (t >> 8)) >> 8) >> 7.
//   open_clip on an RGBA image: PIL resizes it as 'RGBa' (premultiplied: v a / 255 rounded the same way),
//     all four planes alike, then divides back (255 v / a, truncated, capped at 255; alpha 0 or 255 left
//     as is) and drops alpha. An image whose size does not change is not converted at all.
//   open_clip on a palette ('P') image: PIL resizes with nearest neighbour whatever filter it is asked
//     for: output i takes input floor(s / 2 + i s), s = in / out, the position accumulated by adding s.

const div255 = (x: number) => (x + (x >> 8)) >> 8;

/** RGBA8 → RGB8 over opaque white, as PIL.Image.alpha_composite. */
export function compositeOntoWhite(rgba: Uint8Array): Uint8Array {
  const rgb = new Uint8Array((rgba.length / 4) * 3);
  for (let i = 0; i < rgba.length / 4; i++) {
    const a = rgba[i * 4 + 3]!;
    for (let c = 0; c < 3; c++) {
      const t = (rgba[i * 4 + c]! * a + 255 * (255 - a)) * 128 + (1 << 14);
      rgb[i * 3 + c] = div255(t) >> 7;
    }
  }
  return rgb;
}

/** open_clip's preprocessing of an RGBA image PIL opens as 'RGBA' (premultiplied resize). */
export function referenceRgbaOpenClip(rgba: Uint8Array, width: number, height: number, options: ReferenceOptions): Float64Array {
  const { size } = options;
  const g = referenceGeometry(width, height, size);
  const resize = g.resizedWidth !== width || g.resizedHeight !== height;
  const planes = [0, 1, 2, 3].map((c) => {
    const data = new Uint8Array(width * height);
    for (let i = 0; i < width * height; i++) {
      const v = rgba[i * 4 + c]!;
      data[i] = c === 3 || !resize ? v : div255(v * rgba[i * 4 + 3]! + 128);
    }
    return resize ? pilResizePlane({ rows: height, cols: width, data }, g.resizedWidth, g.resizedHeight, 'fixed22', options.passOrder ?? 'pillow13') : { rows: height, cols: width, data };
  });
  const out = new Float64Array(3 * size * size);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const at = (g.top + y) * planes[0]!.cols + g.left + x;
      const a = planes[3]!.data[at]!;
      for (let c = 0; c < 3; c++) {
        const v = planes[c]!.data[at]!;
        const u = !resize || a === 0 || a === 255 ? v : Math.min(255, Math.floor((255 * v) / a));
        out[c * size * size + y * size + x] = (u / 255 - options.mean[c]) / options.std[c];
      }
    }
  }
  return out;
}

/** open_clip's preprocessing of a palette image (RGB8 here: the palette already applied). */
export function referencePaletteOpenClip(rgb: Uint8Array, width: number, height: number, options: ReferenceOptions): Float64Array {
  const { size } = options;
  const g = referenceGeometry(width, height, size);
  const sources = (inSize: number, outSize: number) => {
    const s = inSize / outSize;
    const at: number[] = [];
    for (let i = 0, pos = s / 2; i < outSize; i++, pos += s) at.push(Math.min(inSize - 1, Math.floor(pos)));
    return at;
  };
  const xs = sources(width, g.resizedWidth);
  const ys = sources(height, g.resizedHeight);
  const out = new Float64Array(3 * size * size);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const p = (ys[g.top + y]! * width + xs[g.left + x]!) * 3;
      for (let c = 0; c < 3; c++) out[c * size * size + y * size + x] = (rgb[p + c]! / 255 - options.mean[c]) / options.std[c];
    }
  }
  return out;
}

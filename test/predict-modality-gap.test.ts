import { describe, expect, it } from 'vitest';
import { estimateModalityGap, removeModalityGap, UnitMean } from '../src/predict/modality-gap.js';
import { maxAbsDiff, randomMatrix, randomUnitRows } from './helpers/predict-fakes.js';

const DIM = 48;

/**
 * Unit text rows with coordinate 0 fixed at -a, and their images: the same rows with coordinate 0 at
 * +a. Both sets are unit length, so the planted gap is exactly 2a along axis 0 and img - gap = text.
 */
function pairs(n: number, a: number, seed: number): { texts: Float32Array; images: Float32Array } {
  const texts = randomUnitRows(n, DIM, seed);
  for (let r = 0; r < n; r++) {
    const t = texts.subarray(r * DIM, (r + 1) * DIM);
    const s = Math.sqrt(1 - a * a) / Math.hypot(...t.subarray(1));
    for (let i = 1; i < DIM; i++) t[i] *= s;
    t[0] = -a;
  }
  const images = new Float32Array(texts);
  for (let r = 0; r < n; r++) images[r * DIM] = a;
  return { texts, images };
}

describe('modality gap', () => {
  it('recovers a planted offset and maps images back onto their texts', () => {
    const { texts, images } = pairs(300, 0.35, 1);
    // Image embeddings arrive unnormalised from the model: scale them, the estimate must not care.
    const scaled = images.map((x, i) => x * (1 + (Math.floor(i / DIM) % 7)));
    const gap = estimateModalityGap(scaled, texts, DIM);
    expect(gap.images).toBe(300);
    expect(gap.texts).toBe(300);
    const planted = new Float32Array(DIM);
    planted[0] = 0.7;
    const err = maxAbsDiff(gap.vector, planted);
    console.log(`planted gap 0.7 e0: max abs error ${err.toExponential(2)}`);
    expect(err).toBeLessThan(1e-6);
    const corrected = removeModalityGap(scaled, gap.vector);
    expect(maxAbsDiff(corrected, texts)).toBeLessThan(1e-5);
  });

  it('accumulates batch by batch to the same estimate, skipping rows with no direction', () => {
    const { texts, images } = pairs(100, 0.2, 2);
    const whole = estimateModalityGap(images, texts, DIM).vector;
    const imageMean = new UnitMean(DIM);
    for (let b = 0; b < 100; b += 30) imageMean.add(images.subarray(b * DIM, Math.min(100, b + 30) * DIM));
    expect(imageMean.add(new Float32Array(DIM))).toBe(0); // a zero row is skipped
    const textMean = new UnitMean(DIM);
    textMean.add(texts);
    const batched = estimateModalityGap(imageMean, textMean, DIM);
    expect(batched.images).toBe(100);
    expect(maxAbsDiff(batched.vector, whole)).toBeLessThan(1e-7);
  });

  it('leaves zero rows zero and refuses an estimate from nothing', () => {
    const gap = randomMatrix(1, DIM, 3, 0.1);
    const images = randomMatrix(3, DIM, 4);
    images.fill(0, DIM, 2 * DIM);
    const out = removeModalityGap(images, gap);
    expect(Array.from(out.subarray(DIM, 2 * DIM)).every((x) => x === 0)).toBe(true);
    expect(Math.hypot(...out.subarray(0, DIM))).toBeCloseTo(1, 6);
    expect(() => estimateModalityGap(new Float32Array(DIM), randomUnitRows(2, DIM, 5), DIM, 'run.npy')).toThrow(
      'run.npy: no usable image embeddings to estimate the modality gap from',
    );
    expect(() => estimateModalityGap(randomUnitRows(2, DIM, 5), new Float32Array(DIM + 1), DIM)).toThrow(/not a multiple of the dimension/);
  });
});

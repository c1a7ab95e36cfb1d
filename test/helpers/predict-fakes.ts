/** Seeded random data for the prediction tests (planted answers need reproducible noise). */
import { seededRandom } from '../../src/predict/seeded.js';

/** The same generator the fitting code uses for its splits. */
export const rng = seededRandom;

/** Standard normal samples (Box-Muller). */
export function gaussian(random: () => number): () => number {
  return () => {
    const u = 1 - random();
    const v = random();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
}

export function randomMatrix(rows: number, dim: number, seed: number, scale = 1): Float32Array {
  const g = gaussian(rng(seed));
  return Float32Array.from({ length: rows * dim }, () => g() * scale);
}

export function unitRowsOf(data: Float32Array, dim: number): Float32Array {
  const out = new Float32Array(data);
  for (let r = 0; r < data.length / dim; r++) {
    let s = 0;
    for (let i = 0; i < dim; i++) s += out[r * dim + i] ** 2;
    const inv = 1 / Math.sqrt(s);
    for (let i = 0; i < dim; i++) out[r * dim + i] *= inv;
  }
  return out;
}

export function randomUnitRows(rows: number, dim: number, seed: number): Float32Array {
  return unitRowsOf(randomMatrix(rows, dim, seed), dim);
}

export function row(data: Float32Array, r: number, dim: number): Float32Array {
  return data.subarray(r * dim, (r + 1) * dim);
}

export function cosineOf(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    d += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return d / Math.sqrt(na * nb);
}

export { maxAbsDiff } from '../reference/compare.js';

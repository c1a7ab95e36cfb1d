import { Img2PromptError } from '../util/errors.js';

/**
 * Row-major matrix helpers shared by the prediction members. Sums run in double precision: the
 * inputs are float32, but means over a large bank lose digits otherwise.
 */

/** A row-major [rows, dim] float32 matrix. */
export interface RowMatrix {
  data: Float32Array;
  rows: number;
  dim: number;
}

/** Throws unless `data` holds exactly rows x dim values (rows inferred when omitted). */
export function checkRows(data: Float32Array, dim: number, what: string, label: string, rows?: number): number {
  if (!(data instanceof Float32Array)) throw new Img2PromptError(label, `${what} must be a Float32Array`);
  if (!Number.isInteger(dim) || dim <= 0) throw new Img2PromptError(label, `${what}: dimension must be a positive integer, got ${dim}`);
  if (data.length % dim !== 0) {
    throw new Img2PromptError(label, `${what}: ${data.length} values are not a multiple of the dimension ${dim}`);
  }
  const n = data.length / dim;
  if (rows !== undefined && n !== rows) {
    throw new Img2PromptError(label, `${what}: expected ${rows} rows of ${dim}, got ${n}`);
  }
  return n;
}

/** Squared L2 norm of row `r`, NaN if any value is not finite. */
export function rowNormSquared(data: Float32Array, r: number, dim: number): number {
  let s = 0;
  const o = r * dim;
  for (let i = 0; i < dim; i++) {
    const x = data[o + i];
    s += x * x;
  }
  return Number.isFinite(s) ? s : NaN;
}

/** A usable row: finite and not the zero vector (which has no direction). */
export function isUsableRow(data: Float32Array, r: number, dim: number): boolean {
  const s = rowNormSquared(data, r, dim);
  return Number.isFinite(s) && s > 0;
}

/** Scales row `r` of `data` in place to unit length; returns false (row untouched) if it has no direction. */
export function normalizeRowInPlace(data: Float32Array | Float64Array, r: number, dim: number): boolean {
  let s = 0;
  const o = r * dim;
  for (let i = 0; i < dim; i++) s += data[o + i] * data[o + i];
  if (!Number.isFinite(s) || s === 0) return false;
  const inv = 1 / Math.sqrt(s);
  for (let i = 0; i < dim; i++) data[o + i] *= inv;
  return true;
}

/** A copy of `data` with every row scaled to unit length; rows without direction stay as they are. */
export function normalizedRows(data: Float32Array, dim: number): Float32Array {
  const out = new Float32Array(data);
  const rows = data.length / dim;
  for (let r = 0; r < rows; r++) normalizeRowInPlace(out, r, dim);
  return out;
}

/** True when every row has unit length within `tolerance` (embedders promise this; cheap to verify). */
export function rowsAreUnit(data: Float32Array, dim: number, tolerance = 1e-3): boolean {
  const rows = data.length / dim;
  for (let r = 0; r < rows; r++) {
    const n = Math.sqrt(rowNormSquared(data, r, dim));
    if (!(Math.abs(n - 1) <= tolerance)) return false;
  }
  return true;
}

/** `data` itself when its rows are already unit length, else a normalised copy. */
export function unitRows(data: Float32Array, dim: number): Float32Array {
  return rowsAreUnit(data, dim) ? data : normalizedRows(data, dim);
}

/**
 * Mean of the unit-normalised rows, in double precision. Rows without direction are skipped;
 * `count` says how many were used.
 */
export function meanOfUnitRows(data: Float32Array, dim: number): { mean: Float64Array; count: number } {
  const mean = new Float64Array(dim);
  const rows = data.length / dim;
  let count = 0;
  for (let r = 0; r < rows; r++) {
    const s = rowNormSquared(data, r, dim);
    if (!Number.isFinite(s) || s === 0) continue;
    const inv = 1 / Math.sqrt(s);
    const o = r * dim;
    for (let i = 0; i < dim; i++) mean[i] += data[o + i] * inv;
    count++;
  }
  if (count > 0) for (let i = 0; i < dim; i++) mean[i] /= count;
  return { mean, count };
}

/** Unit-length float32 copy of a vector; throws if it has no direction. */
export function unitVector(v: ArrayLike<number>, label: string, what: string): Float32Array {
  const out = Float32Array.from(v);
  if (!normalizeRowInPlace(out, 0, out.length)) throw new Img2PromptError(label, `${what} has no direction (zero or not finite)`);
  return out;
}

/** Dot product of row `a` of A with row `b` of B, double precision. */
export function dotRows(A: Float32Array, a: number, B: Float32Array, b: number, dim: number): number {
  let s = 0;
  const oa = a * dim;
  const ob = b * dim;
  for (let i = 0; i < dim; i++) s += A[oa + i] * B[ob + i];
  return s;
}

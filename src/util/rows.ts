import { Img2PromptError } from './errors.js';

/**
 * The row matrices that flow from the towers to the rankers, and the one L2 normaliser.
 *
 * The contract: the towers (ClipModel.encodePixels / encodeImages / encodeTexts and
 * MiniLMEmbedder.embed) hand out unit-length rows. Code downstream of them does not normalise
 * their output again; where it needs the guarantee it checks it (`rowsAreUnit`, `rowDefect`),
 * which reads the rows once and copies nothing. One deliberate exception: the label-bank cache
 * runs the normaliser over the rows it stores (in place, once per bank build), so every bank file
 * holds rows of this arithmetic whichever graph made them (see bank-cache.ts, checkedRows).
 *
 * Sums of squares run in double precision over float32 values (each product is exact in a double),
 * in index order; every caller depends on these exact bits, so keep the order.
 */

/**
 * A row-major [rows, dim] matrix. `data` is float32 values, or for a float16 bank the IEEE half
 * bits (`Rows<Uint16Array>`). `data` may be a view into a larger buffer.
 */
export interface Rows<D extends Float32Array | Uint16Array = Float32Array> {
  data: D;
  rows: number;
  dim: number;
}

declare const unitRowsBrand: unique symbol;

/** Rows known to be unit length (checked by `checkUnitRows`, or promised by a tower). */
export type UnitRows = Rows & { readonly [unitRowsBrand]: true };

/** How far a unit row's norm may be from 1 (float16 towers and float32 sums stay well inside). */
export const UNIT_TOLERANCE = 1e-3;

/** `data` as a Rows of width `dim`, after `checkRows`. No copy. */
export function rowsOf(data: Float32Array, dim: number, what: string, label: string, rows?: number): Rows {
  return { data, rows: checkRows(data, dim, what, label, rows), dim };
}

/** Throws unless `data` holds exactly rows x dim values (rows inferred when omitted); returns the rows. */
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

/** Throws unless `m.data` holds exactly `rows` (default m.rows) rows of m.dim values and m.rows says so. */
export function checkShape(m: Rows, what: string, label: string, rows = m.rows): void {
  checkRows(m.data, m.dim, what, label, rows);
  if (m.rows !== rows) throw new Img2PromptError(label, `${what}: says ${m.rows} rows, expected ${rows}`);
}

/** Row `r` as a view (shares memory with `m.data`). */
export function rowView<D extends Float32Array | Uint16Array>(m: Rows<D>, r: number): D {
  return m.data.subarray(r * m.dim, (r + 1) * m.dim) as D;
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

/** What is wrong with row `r` as a unit row, or undefined when its norm is within `tolerance` of 1. */
export function rowDefect(data: Float32Array, r: number, dim: number, tolerance = UNIT_TOLERANCE): 'zero' | 'not finite' | 'not unit length' | undefined {
  const s = rowNormSquared(data, r, dim);
  if (Number.isNaN(s)) return 'not finite';
  if (s === 0) return 'zero';
  return Math.abs(Math.sqrt(s) - 1) <= tolerance ? undefined : 'not unit length';
}

/** True when every row has unit length within `tolerance`: one read of the rows, no copy. */
export function rowsAreUnit(m: Rows, tolerance = UNIT_TOLERANCE): boolean {
  for (let r = 0; r < m.rows; r++) if (rowDefect(m.data, r, m.dim, tolerance) !== undefined) return false;
  return true;
}

/**
 * `m` branded as unit rows, or an Img2PromptError naming the first bad row: "<what> <r> is zero",
 * "... is not finite", or "... is not unit length (norm x; <fix>)".
 */
export function checkUnitRows(m: Rows, label: string | undefined, what: string, fix = 'normalise it first'): UnitRows {
  for (let r = 0; r < m.rows; r++) {
    const defect = rowDefect(m.data, r, m.dim);
    if (defect === undefined) continue;
    const detail = defect === 'not unit length' ? ` (norm ${Math.sqrt(rowNormSquared(m.data, r, m.dim)).toPrecision(6)}; ${fix})` : '';
    throw new Img2PromptError(label, `${what} ${r} is ${defect}${detail}`);
  }
  return m as UnitRows;
}

export interface NormalizeOptions {
  /**
   * Divide by max(norm, minNorm) instead of the norm, as torch's F.normalize does with its eps: a
   * row shorter than minNorm is scaled by 1/minNorm and stays short. Default 0 (no floor). The CLIP
   * tower passes 1e-12, which it always has; it changes nothing for any row longer than 1e-12.
   */
  minNorm?: number;
}

/**
 * THE normaliser: scales row `r` of `data` in place to unit length (sum of squares in double, in
 * index order; each value multiplied by the double 1/norm and rounded back to the array's type).
 * A row without direction, all zeros or holding a NaN or an infinity, is left exactly as it was and
 * the answer is false; what to do with it (skip, zero it, refuse it) is the caller's decision.
 */
export function normalizeRowInPlace(data: Float32Array | Float64Array, r: number, dim: number, options: NormalizeOptions = {}): boolean {
  let s = 0;
  const o = r * dim;
  for (let i = 0; i < dim; i++) s += data[o + i] * data[o + i];
  if (!Number.isFinite(s) || s === 0) return false;
  const inv = 1 / Math.max(Math.sqrt(s), options.minNorm ?? 0);
  for (let i = 0; i < dim; i++) data[o + i] *= inv;
  return true;
}

/**
 * Every row of `data` (width `dim`) normalised in place by `normalizeRowInPlace`; rows without
 * direction are left as they are. Returns how many rows those were.
 */
export function normalizeRowsInPlace(data: Float32Array, dim: number, options: NormalizeOptions = {}): number {
  const rows = data.length / dim;
  let skipped = 0;
  for (let r = 0; r < rows; r++) if (!normalizeRowInPlace(data, r, dim, options)) skipped++;
  return skipped;
}

/** `m.data` itself when its rows are already unit length, else a normalised copy (rows without direction unchanged). */
export function unitRows(m: Rows): Float32Array {
  if (rowsAreUnit(m)) return m.data;
  const out = new Float32Array(m.data);
  normalizeRowsInPlace(out, m.dim);
  return out;
}

/**
 * Mean of the unit-normalised rows, in double precision (means over a large bank lose digits in
 * float32). Rows without direction are skipped; `count` says how many were used.
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

/**
 * The dense linear algebra behind ridge regression, in double precision: accumulating XᵀX and XᵀY
 * over many rows, and solving a symmetric positive definite system by Cholesky.
 *
 * The accumulation is the expensive part (N·D² multiply-adds for N prompts of dimension D), so rows
 * are taken in panels of PANEL rows, transposed feature-major, and every pair of features is reduced
 * over the panel in 2x4 register blocks: six loads feed eight multiply-adds, which is what lets
 * plain JavaScript get past one multiply-add per load.
 */

const PANEL = 128;

const roundUp = (n: number, m: number): number => Math.ceil(n / m) * m;

/**
 * Copies rows [r0, r0 + count) of row-major `src` ([*, dim]) into `panel` feature-major:
 * panel[f * PANEL + r] = src[(r0 + r) * dim + f]. Padding rows and features stay zero.
 */
function fillPanel(panel: Float64Array, src: Float32Array, dim: number, rowIndex: ArrayLike<number> | null, r0: number, count: number): void {
  panel.fill(0);
  for (let r = 0; r < count; r++) {
    const o = (rowIndex ? rowIndex[r0 + r] : r0 + r) * dim;
    for (let f = 0; f < dim; f++) panel[f * PANEL + r] = src[o + f];
  }
}

/**
 * out[i * nb + j] += Σ_t A[i * k + t] · B[j * k + t] for i < na (step 2), j < nb (step 4): rows of
 * A against rows of B, both of length k. With `lower`, blocks entirely above the diagonal are
 * skipped (A = B: a Gram matrix).
 */
function accumulateRowDots(A: Float64Array, na: number, B: Float64Array, nb: number, k: number, out: Float64Array, lower: boolean): void {
  for (let i = 0; i < na; i += 2) {
    const a0 = i * k;
    const a1 = a0 + k;
    const jEnd = lower ? Math.min(nb, i + 2) : nb;
    for (let j = 0; j < jEnd; j += 4) {
      const b0 = j * k;
      const b1 = b0 + k;
      const b2 = b1 + k;
      const b3 = b2 + k;
      let s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
      for (let t = 0; t < k; t++) {
        const x0 = A[a0 + t];
        const x1 = A[a1 + t];
        const y0 = B[b0 + t];
        const y1 = B[b1 + t];
        const y2 = B[b2 + t];
        const y3 = B[b3 + t];
        s00 += x0 * y0; s01 += x0 * y1; s02 += x0 * y2; s03 += x0 * y3;
        s10 += x1 * y0; s11 += x1 * y1; s12 += x1 * y2; s13 += x1 * y3;
      }
      const o = i * nb + j;
      out[o] += s00; out[o + 1] += s01; out[o + 2] += s02; out[o + 3] += s03;
      out[o + nb] += s10; out[o + nb + 1] += s11; out[o + nb + 2] += s12; out[o + nb + 3] += s13;
    }
  }
}

export interface CrossProducts {
  /** XᵀX, [dx, dx] row-major, symmetric. */
  xx: Float64Array;
  /** XᵀY, [dx, dy] row-major. */
  xy: Float64Array;
  /** Column sums of X [dx] and Y [dy]. */
  sumX: Float64Array;
  sumY: Float64Array;
  rows: number;
}

/**
 * XᵀX, XᵀY and the column sums over the rows of X [*, dx] and Y [*, dy] listed in `rowIndex` (all
 * rows when null). `onProgress` gets the number of rows done after each panel.
 */
export function crossProducts(
  X: Float32Array, dx: number, Y: Float32Array, dy: number,
  rowIndex: ArrayLike<number> | null = null,
  onProgress?: (rows: number) => void,
): CrossProducts {
  const n = rowIndex ? rowIndex.length : X.length / dx;
  const px = roundUp(dx, 4);
  const py = roundUp(dy, 4);
  const xxPadded = new Float64Array(px * px);
  const xyPadded = new Float64Array(px * py);
  const panelX = new Float64Array(px * PANEL);
  const panelY = new Float64Array(py * PANEL);
  for (let r0 = 0; r0 < n; r0 += PANEL) {
    const count = Math.min(PANEL, n - r0);
    fillPanel(panelX, X, dx, rowIndex, r0, count);
    fillPanel(panelY, Y, dy, rowIndex, r0, count);
    accumulateRowDots(panelX, px, panelX, px, PANEL, xxPadded, true);
    accumulateRowDots(panelX, px, panelY, py, PANEL, xyPadded, false);
    onProgress?.(r0 + count);
  }
  const xx = new Float64Array(dx * dx);
  for (let i = 0; i < dx; i++) {
    for (let j = 0; j <= i; j++) {
      const v = xxPadded[i * px + j];
      xx[i * dx + j] = v;
      xx[j * dx + i] = v;
    }
  }
  const xy = new Float64Array(dx * dy);
  for (let i = 0; i < dx; i++) for (let j = 0; j < dy; j++) xy[i * dy + j] = xyPadded[i * py + j];
  const sumX = new Float64Array(dx);
  const sumY = new Float64Array(dy);
  for (let r = 0; r < n; r++) {
    const ox = (rowIndex ? rowIndex[r] : r) * dx;
    const oy = (rowIndex ? rowIndex[r] : r) * dy;
    for (let f = 0; f < dx; f++) sumX[f] += X[ox + f];
    for (let f = 0; f < dy; f++) sumY[f] += Y[oy + f];
  }
  return { xx, xy, sumX, sumY, rows: n };
}

/** a - b elementwise (the products of a subset of rows taken out of the whole). */
export function subtractProducts(a: CrossProducts, b: CrossProducts): CrossProducts {
  const sub = (p: Float64Array, q: Float64Array): Float64Array => p.map((v, i) => v - q[i]);
  return { xx: sub(a.xx, b.xx), xy: sub(a.xy, b.xy), sumX: sub(a.sumX, b.sumX), sumY: sub(a.sumY, b.sumY), rows: a.rows - b.rows };
}

/**
 * Lower-triangular L with A = L·Lᵀ, for a symmetric positive definite [n, n] A (row-major; only its
 * lower triangle is read). Returns null when A is not positive definite to working precision.
 */
export function cholesky(A: Float64Array, n: number): Float64Array | null {
  const L = new Float64Array(n * n);
  let maxDiag = 0;
  for (let i = 0; i < n; i++) maxDiag = Math.max(maxDiag, Math.abs(A[i * n + i]));
  const tiny = maxDiag * n * Number.EPSILON;
  for (let j = 0; j < n; j++) {
    const oj = j * n;
    let s = A[oj + j];
    for (let k = 0; k < j; k++) s -= L[oj + k] * L[oj + k];
    if (!(s > tiny)) return null;
    const d = Math.sqrt(s);
    L[oj + j] = d;
    for (let i = j + 1; i < n; i++) {
      const oi = i * n;
      let t = A[oi + j];
      for (let k = 0; k < j; k++) t -= L[oi + k] * L[oj + k];
      L[oi + j] = t / d;
    }
  }
  return L;
}

/** Solves L·Lᵀ·W = C for W [n, m] (C row-major [n, m]), given the Cholesky factor L. */
export function choleskySolve(L: Float64Array, n: number, C: Float64Array, m: number): Float64Array {
  const W = new Float64Array(C);
  // Forward: L·Z = C.
  for (let i = 0; i < n; i++) {
    const wi = i * m;
    for (let k = 0; k < i; k++) {
      const l = L[i * n + k];
      if (l === 0) continue;
      const wk = k * m;
      for (let t = 0; t < m; t++) W[wi + t] -= l * W[wk + t];
    }
    const inv = 1 / L[i * n + i];
    for (let t = 0; t < m; t++) W[wi + t] *= inv;
  }
  // Backward: Lᵀ·W = Z.
  for (let i = n - 1; i >= 0; i--) {
    const wi = i * m;
    for (let k = i + 1; k < n; k++) {
      const l = L[k * n + i];
      if (l === 0) continue;
      const wk = k * m;
      for (let t = 0; t < m; t++) W[wi + t] -= l * W[wk + t];
    }
    const inv = 1 / L[i * n + i];
    for (let t = 0; t < m; t++) W[wi + t] *= inv;
  }
  return W;
}

/**
 * out[i * nb + j] = Σ_t A[i * k + t] · B[j * k + t]: rows of A against rows of B, both row-major
 * with row length k (A·Bᵀ). na must be even and nb a multiple of 4 (pad with zero rows).
 */
export function rowsTimesRows(A: Float64Array, na: number, B: Float64Array, nb: number, k: number, out: Float64Array): void {
  out.fill(0, 0, na * nb);
  accumulateRowDots(A, na, B, nb, k, out, false);
}

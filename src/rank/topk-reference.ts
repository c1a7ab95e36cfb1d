import { fromFloat16 } from './float16.js';
import { matrixShape, type Matrix, type TopKResult } from './topk.js';

/**
 * The same selection as topk()/bottomk() written as plain TypeScript: every score in double
 * precision, then a sorted list of the best k. It is the oracle the native kernel is tested against and the
 * baseline it is measured against; inputs are assumed valid (topk.ts does the checking).
 */

const halfTable = fromFloat16(Uint16Array.from({ length: 65536 }, (_, i) => i));

/** Every score of query row `q` against the bank, in double precision. */
export function referenceScores(queries: Matrix, bank: Matrix, q: number): Float64Array {
  const dim = matrixShape(queries)[1];
  const rows = matrixShape(bank)[0];
  const query = queries.data as Float32Array;
  const half = bank.data instanceof Uint16Array;
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let sum = 0;
    const rowStart = r * dim;
    const queryStart = q * dim;
    for (let d = 0; d < dim; d++) {
      const value = half ? halfTable[bank.data[rowStart + d]] : bank.data[rowStart + d];
      sum += query[queryStart + d] * value;
    }
    out[r] = sum;
  }
  return out;
}

/** The index of `order` at which `(key, index)` belongs: keys descending, then indices ascending. */
function insertionPoint(keys: number[], order: number[], key: number, index: number): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (keys[mid] > key || (keys[mid] === key && order[mid] < index)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export function topkReference(queries: Matrix, bank: Matrix, k: number, options: { least?: boolean } = {}): TopKResult {
  const rows = matrixShape(queries)[0];
  const bankRows = matrixShape(bank)[0];
  const kk = Math.min(k, bankRows);
  const indices = new Int32Array(rows * kk);
  const scores = new Float32Array(rows * kk);
  for (let q = 0; q < rows; q++) {
    const s = referenceScores(queries, bank, q);
    // The best kk so far, kept sorted. Rank by score (negated for least-similar), NaN last, then lower index.
    const keys: number[] = [];
    const order: number[] = [];
    for (let r = 0; r < bankRows && kk > 0; r++) {
      const key = Number.isNaN(s[r]) ? -Infinity : options.least ? -s[r] : s[r];
      if (keys.length === kk && key <= keys[kk - 1]) continue; // rows come in index order: a tie loses
      const at = insertionPoint(keys, order, key, r);
      keys.splice(at, 0, key);
      order.splice(at, 0, r);
      if (keys.length > kk) {
        keys.pop();
        order.pop();
      }
    }
    for (let i = 0; i < kk; i++) {
      indices[q * kk + i] = order[i];
      scores[q * kk + i] = s[order[i]];
    }
  }
  return { rows, k: kk, indices, scores };
}

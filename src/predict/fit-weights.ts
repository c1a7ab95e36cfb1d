import { Img2PromptError } from '../util/errors.js';
import { readOptions } from '../util/options.js';
import type { EnsembleWeights, ModelIds } from './ensemble.js';
import { seededPermutation } from './seeded.js';
import { checkRows, rowNormSquared } from '../util/rows.js';

/**
 * Fits the ensemble weights on images whose true prompts are known: non-negative weights summing to
 * 1 that maximise the mean cosine between the combined vector and the truth, with k-fold
 * cross-validation to report how well the weights generalise.
 *
 * The ensemble vector of image i is Σ_m w_m·u_mi (u = unit member rows; scale does not matter), so
 * its cosine with the unit truth t_i is (w·a_i) / sqrt(wᵀ·G_i·w), with a_mi = u_mi·t_i and
 * G_i[m][n] = u_mi·u_ni. Both are precomputed once; the search then never touches the 384-d vectors.
 *
 * Search: for up to 3 members an exhaustive grid on the simplex (step 0.01) finds the global basin,
 * then projected gradient ascent refines it; for more members, projected gradient ascent from the
 * uniform point and from every vertex, keeping the best.
 */

export interface FitWeightsOptions {
  /** Cross-validation folds; default 5. */
  folds?: number;
  /** Seed of the shuffle that assigns images to folds; default 0. */
  seed?: number;
  /** Names the validation data in error messages. */
  label?: string;
}

export interface FoldResult {
  fold: number;
  /** Held-out images in this fold. */
  images: number;
  /** Weights fitted on the other folds. */
  weights: Record<string, number>;
  /** Mean cosine of the ensemble on the held-out images. */
  ensemble: number;
  /** Mean cosine of each member alone on the held-out images. */
  members: Record<string, number>;
}

export interface FitWeightsResult {
  /** Weights fitted on all images (what to use). */
  weights: Record<string, number>;
  /** Out-of-fold mean cosine of the ensemble over all images. */
  cvScore: number;
  /** Each member's own mean cosine over all images (nothing fitted, so this is its CV score too). */
  memberScores: Record<string, number>;
  /** Mean cosine of the final weights on all images (in-sample; ≥ cvScore typically). */
  fitScore: number;
  folds: FoldResult[];
  images: number;
  seed: number;
  /**
   * Per image, in input order: the fold it was held out in and the ensemble's cosine for it under the
   * weights fitted on the other folds (what cvScore averages; img2prompt eval charts them).
   */
  outOfFold: { fold: number; cosine: number }[];
}

/** Per-image statistics: a [M, K] (cosines with the truth), G [M, K, K] (member cross products). */
interface Stats {
  k: number;
  a: Float64Array;
  g: Float64Array;
}

function computeStats(members: Float32Array[], truth: Float32Array, dim: number, images: number): Stats {
  const k = members.length;
  const a = new Float64Array(images * k);
  const g = new Float64Array(images * k * k);
  const inv = new Float64Array(k);
  for (let i = 0; i < images; i++) {
    const tn = 1 / Math.sqrt(rowNormSquared(truth, i, dim));
    for (let m = 0; m < k; m++) {
      const s = rowNormSquared(members[m], i, dim);
      inv[m] = s > 0 ? 1 / Math.sqrt(s) : 0; // a member with nothing for this image contributes nothing
    }
    const o = i * dim;
    for (let m = 0; m < k; m++) {
      if (inv[m] === 0) continue;
      const pm = members[m];
      let d = 0;
      for (let j = 0; j < dim; j++) d += pm[o + j] * truth[o + j];
      a[i * k + m] = d * inv[m] * tn;
      for (let n = 0; n <= m; n++) {
        if (inv[n] === 0) continue;
        const pn = members[n];
        let e = 0;
        for (let j = 0; j < dim; j++) e += pm[o + j] * pn[o + j];
        const v = e * inv[m] * inv[n];
        g[(i * k + m) * k + n] = v;
        g[(i * k + n) * k + m] = v;
      }
    }
  }
  return { k, a, g };
}

/** Mean cosine over `rows` for weights w, and (when `grad` is given) its gradient. */
function objective(stats: Stats, rows: Int32Array, w: Float64Array, grad?: Float64Array): number {
  const { k, a, g } = stats;
  const gw = new Float64Array(k);
  if (grad) grad.fill(0);
  let sum = 0;
  for (const i of rows) {
    let num = 0;
    let q = 0;
    for (let m = 0; m < k; m++) {
      num += w[m] * a[i * k + m];
      let s = 0;
      for (let n = 0; n < k; n++) s += g[(i * k + m) * k + n] * w[n];
      gw[m] = s;
      q += w[m] * s;
    }
    if (!(q > 0)) continue; // no member has a vector for this image under w
    const norm = Math.sqrt(q);
    sum += num / norm;
    if (grad) {
      const c = num / (q * norm);
      for (let m = 0; m < k; m++) grad[m] += a[i * k + m] / norm - c * gw[m];
    }
  }
  const n = rows.length;
  if (grad) for (let m = 0; m < k; m++) grad[m] /= n;
  return sum / n;
}

/** The ensemble's cosine with the truth for image i under weights w (0 when no member has a vector for it). */
function imageCosine(stats: Stats, i: number, w: Float64Array): number {
  const { k, a, g } = stats;
  let num = 0;
  let q = 0;
  for (let m = 0; m < k; m++) {
    num += w[m] * a[i * k + m];
    for (let n = 0; n < k; n++) q += w[m] * g[(i * k + m) * k + n] * w[n];
  }
  return q > 0 ? num / Math.sqrt(q) : 0;
}

/** Euclidean projection onto the probability simplex. */
export function projectToSimplex(v: ArrayLike<number>): Float64Array {
  const k = v.length;
  const u = Float64Array.from(v).sort().reverse();
  let cumulative = 0;
  let theta = 0;
  for (let j = 0; j < k; j++) {
    cumulative += u[j];
    const t = (cumulative - 1) / (j + 1);
    if (u[j] - t > 0) theta = t;
  }
  return Float64Array.from(v, (x) => Math.max(x - theta, 0));
}

/** Projected gradient ascent with an adaptive step, from `start`. */
function ascend(stats: Stats, rows: Int32Array, start: Float64Array): { w: Float64Array; value: number } {
  let w = start;
  const grad = new Float64Array(stats.k);
  let value = objective(stats, rows, w, grad);
  let step = 0.5;
  for (let iter = 0; iter < 1000 && step > 1e-12; iter++) {
    const candidate = projectToSimplex(w.map((x, m) => x + step * grad[m]));
    const moved = candidate.reduce((s, x, m) => s + Math.abs(x - w[m]), 0);
    if (moved < 1e-12) break; // at a fixed point of the projected step: a KKT point
    const next = objective(stats, rows, candidate);
    if (next > value) {
      w = candidate;
      value = objective(stats, rows, w, grad);
      step *= 1.5;
    } else {
      step *= 0.5;
    }
  }
  return { w, value };
}

/** All points of the simplex in k dimensions with coordinates that are multiples of 1/steps. */
function simplexGrid(k: number, steps: number): Float64Array[] {
  const out: Float64Array[] = [];
  const current = new Array<number>(k).fill(0);
  const visit = (m: number, left: number): void => {
    if (m === k - 1) {
      current[m] = left;
      out.push(Float64Array.from(current, (c) => c / steps));
      return;
    }
    for (let c = 0; c <= left; c++) {
      current[m] = c;
      visit(m + 1, left - c);
    }
  };
  visit(0, steps);
  return out;
}

/** The best simplex weights for `rows`. */
function optimise(stats: Stats, rows: Int32Array): Float64Array {
  const k = stats.k;
  if (k === 1) return Float64Array.of(1);
  let starts: Float64Array[];
  if (k <= 3) {
    let best = -Infinity;
    let bestPoint: Float64Array = new Float64Array(k);
    for (const p of simplexGrid(k, 100)) {
      const v = objective(stats, rows, p);
      if (v > best) {
        best = v;
        bestPoint = p;
      }
    }
    starts = [bestPoint];
  } else {
    starts = [new Float64Array(k).fill(1 / k)];
    for (let m = 0; m < k; m++) {
      const vertex = new Float64Array(k);
      vertex[m] = 1;
      starts.push(vertex);
    }
  }
  let best: { w: Float64Array; value: number } = { w: starts[0], value: -Infinity };
  for (const s of starts) {
    const r = ascend(stats, rows, s);
    if (r.value > best.value) best = r;
  }
  return best.w;
}

/** Fit weights for the members' predictions ({name: [M, dim]}) against the truth [M, dim]. */
export function fitWeights(predictions: Record<string, Float32Array>, truth: Float32Array, dim: number, options: FitWeightsOptions = {}): FitWeightsResult {
  const o = readOptions(options, 'fitWeights()');
  const folds = o.int('folds', { min: 2 }) ?? 5;
  const seed = o.int('seed') ?? 0;
  const label = o.string('label') ?? 'fit-weights';
  o.done();
  const names = Object.keys(predictions);
  if (names.length === 0) throw new Img2PromptError(label, 'no member predictions to fit weights for');
  const images = checkRows(truth, dim, 'truth embeddings', label);
  if (images < folds) {
    throw new Img2PromptError(label, `${images} image${images === 1 ? '' : 's'} with known prompts are too few for ${folds}-fold cross-validation: need at least ${folds}`);
  }
  for (const name of names) checkRows(predictions[name], dim, `predictions of member '${name}'`, label, images);
  for (let i = 0; i < images; i++) {
    const s = rowNormSquared(truth, i, dim);
    if (!(s > 0)) throw new Img2PromptError(label, `truth embedding of image ${i} is zero or not finite`);
  }
  for (const name of names) {
    const p = predictions[name];
    for (let j = 0; j < p.length; j++) {
      if (!Number.isFinite(p[j])) throw new Img2PromptError(label, `member '${name}' has a non-finite value for image ${Math.floor(j / dim)}`);
    }
  }

  const stats = computeStats(names.map((n) => predictions[n]), truth, dim, images);
  const named = (w: ArrayLike<number>): Record<string, number> => Object.fromEntries(names.map((n, m) => [n, w[m]]));
  const unit = (m: number): Float64Array => {
    const w = new Float64Array(names.length);
    w[m] = 1;
    return w;
  };

  // Round-robin over a seeded shuffle: fold sizes differ by at most one.
  const order = seededPermutation(images, seed);
  const foldOf = new Int32Array(images);
  order.forEach((img, pos) => {
    foldOf[img] = pos % folds;
  });
  const foldResults: FoldResult[] = [];
  let outOfFold = 0;
  const perImage: { fold: number; cosine: number }[] = Array.from({ length: images }, (_, i) => ({ fold: foldOf[i], cosine: 0 }));
  for (let f = 0; f < folds; f++) {
    const held: number[] = [];
    const train: number[] = [];
    for (let i = 0; i < images; i++) (foldOf[i] === f ? held : train).push(i);
    const heldRows = Int32Array.from(held);
    const w = optimise(stats, Int32Array.from(train));
    const score = objective(stats, heldRows, w);
    outOfFold += score * held.length;
    for (const i of held) perImage[i].cosine = imageCosine(stats, i, w);
    foldResults.push({
      fold: f,
      images: held.length,
      weights: named(w),
      ensemble: score,
      members: Object.fromEntries(names.map((n, m) => [n, objective(stats, heldRows, unit(m))])),
    });
  }

  const allRows = Int32Array.from({ length: images }, (_, i) => i);
  const final = optimise(stats, allRows);
  return {
    weights: named(final),
    cvScore: outOfFold / images,
    memberScores: Object.fromEntries(names.map((n, m) => [n, objective(stats, allRows, unit(m))])),
    fitScore: objective(stats, allRows, final),
    folds: foldResults,
    images,
    seed,
    outOfFold: perImage,
  };
}

/** The weights file content for a fit (see ensemble.ts). */
export function toWeightsConfig(result: FitWeightsResult, fittedFor: ModelIds): EnsembleWeights {
  return {
    members: result.weights,
    fittedFor,
    cvScore: result.cvScore,
    date: new Date().toISOString(),
    memberScores: result.memberScores,
    folds: result.folds.length,
    images: result.images,
    seed: result.seed,
  };
}

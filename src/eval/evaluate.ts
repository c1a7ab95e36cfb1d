/**
 * What `img2prompt eval` measures: the Kaggle metric (mean cosine between an image's predicted
 * MiniLM vector and its true prompt's) for every member alone and for the ensemble, per image and
 * overall, each with a bootstrap 95 % interval.
 *
 * A member alone has nothing fitted on these images, so its plain mean is already its
 * cross-validated score. The ensemble's weights are fitted (fit-weights.ts), so its score is k-fold
 * cross-validated: each image is scored with the weights fitted on the other folds. The bootstrap
 * resamples those out-of-fold scores; it does not refit the weights per resample (the interval is
 * the images' sampling noise, not the weight fit's).
 */
import { Img2PromptError } from '../util/errors.js';
import { checkRows } from '../util/rows.js';
import { readOptions } from '../util/options.js';
import { fitWeights } from '../predict/fit-weights.js';
import { bootstrapMean, type MeanInterval } from './bootstrap.js';

export const ENSEMBLE = 'ensemble';

export interface EvaluateOptions {
  /** Cross-validation folds for the ensemble; default 5. */
  folds?: number;
  /** Seeds the folds and the bootstrap; default 0. */
  seed?: number;
  /** Bootstrap resamples; default 2000. */
  resamples?: number;
  label?: string;
}

export interface ScoredMember extends MeanInterval {
  name: string;
  /** Cosine per image, in input order (0 where the member had nothing for the image). */
  perImage: number[];
}

export interface Evaluation {
  /** Each member alone, in the order given, then the ensemble (named ENSEMBLE). */
  scores: ScoredMember[];
  /** Ensemble weights fitted on all images, and the fold each image was held out in. */
  weights: Record<string, number>;
  fold: number[];
  folds: number;
  seed: number;
  images: number;
  resamples: number;
}

/** Cosine of row r of `pred` with row r of `truth` (0 when the prediction is a zero row). */
export function rowCosine(pred: Float32Array, truth: Float32Array, r: number, dim: number): number {
  let pt = 0, pp = 0, tt = 0;
  for (let j = r * dim; j < (r + 1) * dim; j++) {
    pt += pred[j] * truth[j];
    pp += pred[j] * pred[j];
    tt += truth[j] * truth[j];
  }
  return pp > 0 && tt > 0 ? pt / Math.sqrt(pp * tt) : 0;
}

/**
 * Scores `predictions` ({member: [N, dim]}, zero rows where a member had nothing) against `truth`
 * [N, dim]: every member per image, the ensemble out of fold, and bootstrap intervals for each mean.
 */
export function evaluate(predictions: Record<string, Float32Array>, truth: Float32Array, dim: number, options: EvaluateOptions = {}): Evaluation {
  const o = readOptions(options, 'evaluate()');
  const folds = o.int('folds', { min: 2 }) ?? 5;
  const seed = o.int('seed') ?? 0;
  const resamples = o.int('resamples', { min: 1 }) ?? 2000;
  const label = o.string('label') ?? 'eval';
  o.done();
  const names = Object.keys(predictions);
  if (names.includes(ENSEMBLE)) throw new Img2PromptError(label, `a member may not be called "${ENSEMBLE}"`);
  const images = checkRows(truth, dim, 'truth embeddings', label);
  // fitWeights checks the shapes, the folds and the values, with messages naming `label`.
  const fit = fitWeights(predictions, truth, dim, { folds, seed, label });
  const interval = (name: string, perImage: number[], k: number): ScoredMember => ({
    name, ...bootstrapMean(perImage, { resamples, seed: seed + k }), perImage,
  });
  const scores = names.map((name, k) => {
    const p = predictions[name];
    return interval(name, Array.from({ length: images }, (_, r) => rowCosine(p, truth, r, dim)), k);
  });
  scores.push(interval(ENSEMBLE, fit.outOfFold.map((o) => o.cosine), names.length));
  return { scores, weights: fit.weights, fold: fit.outOfFold.map((o) => o.fold), folds, seed, images, resamples };
}

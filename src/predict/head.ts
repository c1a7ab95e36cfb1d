/**
 * A fitted head: a regressor from CLIP image embeddings straight to MiniLM prompt vectors, fitted on
 * a user's own labelled images (`img2prompt fit-head`), that joins predict's ensemble as member
 * `head:NAME` (`--member NAME=head.json`).
 *
 * - ridge: the linear-map member's ridge regression (linear-map.ts), here from image embeddings rather
 *   than bank prompts, with λ chosen by k-fold cross-validation and no modality gap to bridge. Its
 *   float64 normal equations and Cholesky solve (normal-equations.ts) are the project's own, already
 *   tested against known answers; a matrix library (ml-matrix) would be a second copy of them.
 * - mlp:   one hidden ReLU layer trained on the cosine loss (head-mlp.ts), stopped early on a held-out fold.
 *
 * Either way the member's vector is the output L2-normalised; an image without a usable embedding
 * gets a zero row (the ensemble's "nothing for this image").
 */
import { Img2PromptError } from '../util/errors.js';
import { checkRows, normalizeRowInPlace } from '../util/rows.js';
import { readOptions } from '../util/options.js';
import { LinearMap, type FittedFor } from './linear-map.js';
import { fitMlp, mlpForward, type MlpFitOptions, type MlpWeights } from './head-mlp.js';
import type { Member } from './members.js';

export const HEAD_KINDS = ['ridge', 'mlp'] as const;
export type HeadKind = (typeof HEAD_KINDS)[number];

/** Relative ridge strengths the cross-validation picks from (see LinearMap: λ scales with the data). */
export const HEAD_LAMBDAS = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1, 3];

export interface HeadFitOptions {
  kind?: HeadKind;
  /** Folds for ridge's λ selection; the MLP holds out one fold of this many. Default 5. */
  folds?: number;
  seed?: number;
  /** Ridge: the relative λ candidates (default HEAD_LAMBDAS). */
  lambdas?: number[];
  /** MLP: hidden units, epochs, patience, step size, batch (see MlpFitOptions). */
  mlp?: Omit<MlpFitOptions, 'folds' | 'seed' | 'label'>;
  label?: string;
}

/** How the head was fitted, as its file records it. */
export interface HeadTraining {
  /** Rows (images) fitted on. */
  images: number;
  folds: number;
  seed: number;
  /** Mean cosine on held-out images: ridge's best cross-validated score, the MLP's early-stopping fold. */
  heldOutCosine: number;
  /** Ridge: the λ chosen and every candidate's cross-validated cosine. */
  lambda?: number;
  lambdaScores?: { lambda: number; cosine: number }[];
  /** MLP: the epoch kept and the epochs run. */
  bestEpoch?: number;
  epochs?: number;
}

/** The weights of either kind: ridge's [clipDim + 1, textDim] matrix (bias last), or the MLP's. */
export type HeadWeights = { kind: 'ridge'; map: Float32Array } | { kind: 'mlp'; mlp: MlpWeights };

export class PromptHead {
  private readonly map: LinearMap | undefined;

  constructor(
    readonly weights: HeadWeights,
    readonly clipDim: number,
    readonly textDim: number,
    readonly training: HeadTraining,
    /** The CLIP and MiniLM models the head was fitted with: another CLIP's embeddings mean nothing to it. */
    readonly fittedFor: FittedFor,
  ) {
    if (weights.kind === 'ridge') {
      this.map = LinearMap.fromWeights(weights.map, {
        clipDim, textDim, lambda: training.lambda ?? 0, lambdaAbsolute: 0, samples: training.images, dataHash: '', fitCosine: training.heldOutCosine,
      });
    }
  }

  get kind(): HeadKind {
    return this.weights.kind;
  }

  /**
   * Fits a head on image embeddings X [N, clipDim] (unit rows, as ClipModel gives them) and the true
   * prompts' MiniLM vectors Y [N, textDim].
   */
  static fit(X: Float32Array, clipDim: number, Y: Float32Array, textDim: number, fittedFor: FittedFor, options: HeadFitOptions = {}): PromptHead {
    const o = readOptions(options, 'PromptHead.fit()');
    const kind = o.oneOf('kind', HEAD_KINDS) ?? 'ridge';
    const folds = o.int('folds', { min: 2 }) ?? 5;
    const seed = o.int('seed') ?? 0;
    const lambdas = o.check('lambdas', (v): v is number[] => Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'number'), 'a non-empty array of numbers');
    const mlp = o.object<NonNullable<HeadFitOptions['mlp']>>('mlp');
    const label = o.string('label') ?? 'fit-head';
    o.done();
    const n = checkRows(X, clipDim, 'image embeddings', label);
    checkRows(Y, textDim, 'prompt vectors', label, n);
    if (n < folds) throw new Img2PromptError(label, `${n} image${n === 1 ? '' : 's'} are too few for ${folds} folds: need at least ${folds}`);
    if (kind === 'ridge') {
      const map = LinearMap.fit(X, clipDim, Y, textDim, { label, select: { folds, seed, candidates: lambdas ?? HEAD_LAMBDAS } });
      const scores = map.info.selection!.scores;
      const heldOutCosine = scores.find((s) => s.lambda === map.info.lambda)!.cosine;
      return new PromptHead({ kind, map: map.weights }, clipDim, textDim, { images: n, folds, seed, heldOutCosine, lambda: map.info.lambda, lambdaScores: scores }, fittedFor);
    }
    const fit = fitMlp(X, clipDim, Y, textDim, { ...mlp, folds, seed, label }, 'PromptHead.fit(): mlp');
    return new PromptHead({ kind, mlp: fit.weights }, clipDim, textDim, { images: n, folds, seed, heldOutCosine: fit.heldOutCosine, bestEpoch: fit.bestEpoch, epochs: fit.epochs }, fittedFor);
  }

  /** The head's raw outputs [B, textDim] for image embeddings [B, clipDim] (as given: no normalisation). */
  project(images: Float32Array): Float32Array {
    checkRows(images, this.clipDim, 'image embeddings', 'head');
    return this.map ? this.map.project(images) : mlpForward((this.weights as { mlp: MlpWeights }).mlp, images);
  }

  /**
   * Predicted MiniLM vectors [B, textDim], unit rows, for image embeddings [B, clipDim]; an image whose
   * embedding is zero or not finite, or whose output has no direction, gets a zero row.
   */
  apply(images: Float32Array): Float32Array {
    const rows = checkRows(images, this.clipDim, 'image embeddings', 'head');
    const unit = images.slice();
    const usable = Array.from({ length: rows }, (_, r) => normalizeRowInPlace(unit, r, this.clipDim));
    const out = this.project(unit);
    for (let r = 0; r < rows; r++) {
      if (!usable[r] || !normalizeRowInPlace(out, r, this.textDim)) out.fill(0, r * this.textDim, (r + 1) * this.textDim);
    }
    return out;
  }

  /** The ensemble member: each batch's CLIP image embeddings through the head. */
  member(): Member {
    return async (embeds) => ({ vectors: this.apply(embeds) });
  }
}

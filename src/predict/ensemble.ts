import { promises as fs } from 'node:fs';
import { writeFileAtomic } from '../util/atomic-write.js';
import { Img2PromptError, errorMessage } from '../util/errors.js';
import { checkRows, meanOfUnitRows, normalizeRowInPlace, rowNormSquared } from '../util/rows.js';

/**
 * The ensemble: every member (prompt-bank kNN, linear map, interrogator caption embedded by MiniLM,
 * ...) predicts a MiniLM vector per image; the submission vector is the weighted sum of the members'
 * unit vectors, L2-normalised.
 *
 * A member may be missing altogether (not configured, failed to load) or for single images (a zero or
 * non-finite row): the remaining weights are renormalised for that image. An image no member could
 * predict gets the fallback vector, the mean MiniLM direction of the prompt bank, which on its own
 * scores far better than a zero row.
 *
 * Weights files fitted for other models: the weights encode how good each member is with one CLIP
 * model and one MiniLM model, and with another model they are a guess. Loading them for a different
 * model is an error by default; `allowModelMismatch` turns the error into a warning (for deliberate
 * reuse, e.g. before a fit for a new model exists).
 */

/** Member name → predictions [B, dim]; undefined/null for a member that produced nothing. */
export type MemberPredictions = Record<string, Float32Array | null | undefined>;

export interface ModelIds {
  clipModel: string;
  minilmModel: string;
}

export interface EnsembleWeights {
  /** Member name → non-negative weight (need not sum to 1; only ratios matter). */
  members: Record<string, number>;
  fittedFor?: ModelIds;
  /** Mean cosine of the fitted ensemble in cross-validation. */
  cvScore?: number;
  /** ISO date of the fit. */
  date?: string;
  /** Extra fit details (per-member CV scores, folds, images); kept as written. */
  [extra: string]: unknown;
}

export interface CombineOptions {
  /** Number of images B. */
  rows: number;
  /** Vector length (384 for MiniLM). */
  dim: number;
  /** Unit vector for images no member predicted (see fallbackVector). */
  fallback: Float32Array;
  /** Images known to have failed upstream (unreadable files): they get the fallback outright. */
  failed?: Iterable<number>;
  /** Names the run in error messages. */
  label?: string;
}

export interface CombineResult {
  /** [B, dim] unit rows. */
  vectors: Float32Array;
  /** Weighted members that produced an array, in weight-file order. */
  present: string[];
  /** Weighted members that produced nothing (their weight went to the others). */
  absent: string[];
  /** Members that produced predictions but have no weight in the file (ignored). */
  unweighted: string[];
  /** Images that got the fallback vector. */
  fallbackRows: number[];
}

/** The mean direction of a set of MiniLM rows [N, dim], unit length: the best constant guess. */
export function fallbackVector(minilm: Float32Array, dim: number, label = 'fallback'): Float32Array {
  checkRows(minilm, dim, 'MiniLM embeddings', label);
  const { mean, count } = meanOfUnitRows(minilm, dim);
  const v = Float32Array.from(mean);
  if (count === 0 || !normalizeRowInPlace(v, 0, dim)) {
    throw new Img2PromptError(label, 'cannot form a fallback vector: the embeddings have no mean direction');
  }
  return v;
}

/** Equal weights for `names` (before any fit exists). */
export function equalWeights(names: readonly string[]): EnsembleWeights {
  return { members: Object.fromEntries(names.map((n) => [n, 1 / names.length])) };
}

/** Weighted sum of the members' unit rows, renormalised over the members present per image, then L2-normalised. */
export function combineMembers(predictions: MemberPredictions, weights: EnsembleWeights, options: CombineOptions): CombineResult {
  const label = options.label ?? 'ensemble';
  const { rows, dim, fallback } = options;
  checkWeights(weights.members, label);
  if (fallback.length !== dim) throw new Img2PromptError(label, `fallback vector has length ${fallback.length}, expected ${dim}`);
  const present: string[] = [];
  const absent: string[] = [];
  const used: { data: Float32Array; weight: number }[] = [];
  for (const [name, weight] of Object.entries(weights.members)) {
    const data = predictions[name];
    if (data === undefined || data === null) {
      absent.push(name);
      continue;
    }
    checkRows(data, dim, `predictions of member '${name}'`, label, rows);
    present.push(name);
    if (weight > 0) used.push({ data, weight });
  }
  const unweighted = Object.keys(predictions).filter((n) => !(n in weights.members) && predictions[n]);
  if (used.length === 0) {
    throw new Img2PromptError(label, `none of the weighted members (${Object.keys(weights.members).filter((n) => weights.members[n] > 0).join(', ')}) produced predictions`);
  }

  const failed = new Set(options.failed ?? []);
  const vectors = new Float32Array(rows * dim);
  const acc = new Float64Array(dim);
  const fallbackRows: number[] = [];
  for (let r = 0; r < rows; r++) {
    let total = 0;
    if (!failed.has(r)) {
      acc.fill(0);
      for (const { data, weight } of used) {
        const s = rowNormSquared(data, r, dim);
        if (!(s > 0)) continue; // this member has nothing for this image
        const scale = weight / Math.sqrt(s);
        const o = r * dim;
        for (let i = 0; i < dim; i++) acc[i] += scale * data[o + i];
        total += weight;
      }
    }
    const out = vectors.subarray(r * dim, (r + 1) * dim);
    // Dividing by `total` renormalises the weights present; the L2 step then fixes the length.
    if (total > 0) for (let i = 0; i < dim; i++) out[i] = acc[i] / total;
    if (total === 0 || !normalizeRowInPlace(vectors, r, dim)) {
      out.set(fallback);
      fallbackRows.push(r);
    }
  }
  return { vectors, present, absent, unweighted, fallbackRows };
}

function checkWeights(members: unknown, file: string): asserts members is Record<string, number> {
  if (typeof members !== 'object' || members === null || Array.isArray(members)) {
    throw new Img2PromptError(file, "weights must have a 'members' object of {name: weight}", { code: 'FILE_INVALID' });
  }
  const entries = Object.entries(members as Record<string, unknown>);
  if (entries.length === 0) throw new Img2PromptError(file, 'weights name no members', { code: 'FILE_INVALID' });
  let sum = 0;
  for (const [name, w] of entries) {
    if (name.length === 0) throw new Img2PromptError(file, 'a member has an empty name', { code: 'FILE_INVALID' });
    if (typeof w !== 'number' || !Number.isFinite(w) || w < 0) {
      throw new Img2PromptError(file, `weight of member '${name}' must be a finite number >= 0, got ${JSON.stringify(w)}`, { code: 'FILE_INVALID' });
    }
    sum += w;
  }
  if (!(sum > 0)) throw new Img2PromptError(file, 'all member weights are zero', { code: 'FILE_INVALID' });
}

export interface LoadWeightsOptions {
  /** The models of this run; a file fitted for others is refused (or warned about, see below). */
  expect?: Partial<ModelIds>;
  /** Accept weights fitted for other models, with a warning instead of an error. */
  allowModelMismatch?: boolean;
}

/** Reads and validates a weights file. `warnings` lists what the caller should print. */
export async function loadEnsembleWeights(file: string, options: LoadWeightsOptions = {}): Promise<{ weights: EnsembleWeights; warnings: string[] }> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await fs.readFile(file, 'utf8'));
  } catch (err) {
    throw new Img2PromptError(file, `cannot read ensemble weights: ${errorMessage(err)}`, { code: 'FILE_UNREADABLE', cause: err });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Img2PromptError(file, 'ensemble weights must be a JSON object', { code: 'FILE_INVALID' });
  const weights = parsed as EnsembleWeights;
  checkWeights(weights.members, file);
  if (weights.cvScore !== undefined && typeof weights.cvScore !== 'number') throw new Img2PromptError(file, 'cvScore must be a number', { code: 'FILE_INVALID' });
  const warnings: string[] = [];
  const { fittedFor } = weights;
  if (fittedFor !== undefined && (typeof fittedFor !== 'object' || fittedFor === null)) throw new Img2PromptError(file, 'fittedFor must be an object', { code: 'FILE_INVALID' });
  for (const key of ['clipModel', 'minilmModel'] as const) {
    const want = options.expect?.[key];
    if (want === undefined) continue;
    const have = fittedFor?.[key];
    if (have === undefined) {
      warnings.push(`${file}: weights do not say which ${key} they were fitted for; using them for '${want}'`);
    } else if (have !== want) {
      const msg = `weights were fitted for ${key} '${have}', this run uses '${want}'`;
      if (!options.allowModelMismatch) throw new Img2PromptError(file, `${msg}; refit them (fit-weights) or allow the mismatch explicitly`, { code: 'MODEL_MISMATCH' });
      warnings.push(`${file}: ${msg}; using them anyway`);
    }
  }
  return { weights, warnings };
}

/** Writes a weights file atomically (date filled in when missing). */
export async function saveEnsembleWeights(file: string, weights: EnsembleWeights): Promise<void> {
  checkWeights(weights.members, file);
  const out = { ...weights, date: weights.date ?? new Date().toISOString() };
  await writeFileAtomic(file, `${JSON.stringify(out, null, 2)}\n`);
}

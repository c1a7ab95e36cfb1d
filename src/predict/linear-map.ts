import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../util/atomic-write.js';
import { sealJson, sealProblem } from '../util/sealed-json.js';
import { Img2PromptError, errorMessage } from '../util/errors.js';
import { readNpy, writeNpy } from '../util/npy.js';
import { removeModalityGap } from './modality-gap.js';
import { cholesky, choleskySolve, crossProducts, rowsTimesRows, subtractProducts, type CrossProducts } from './normal-equations.js';
import { seededPermutation } from './seeded.js';
import { checkRows, normalizeRowInPlace } from '../util/rows.js';

/**
 * The linear-map member: ridge regression from CLIP text embeddings to MiniLM embeddings, fitted on
 * the prompt bank, then applied to gap-corrected image embeddings. Where the kNN member can only
 * average prompts it has seen, the map interpolates between them.
 *
 * y = x·W + b, with (W, b) minimising Σ‖x·W + b − y‖² + λ‖W‖². The bias is not penalised, which is
 * the same as centring X and Y: W = (XcᵀXc + λI)⁻¹·XcᵀYc, b = ȳ − x̄·W, solved by Cholesky in float64.
 *
 * λ is given relative to the data: λ_abs = lambda · trace(XcᵀXc) / D, the mean per-feature sum of
 * squares, so one default suits any bank size and embedding scale.
 */

export const DEFAULT_LAMBDA = 1e-2;
export const DEFAULT_LAMBDA_CANDIDATES = [1e-4, 1e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1];

export interface LambdaSelection {
  /** Relative λ values to try; default DEFAULT_LAMBDA_CANDIDATES. */
  candidates?: number[];
  /** Fraction of rows held out; default 0.1, at most `maxHoldout` rows. */
  fraction?: number;
  maxHoldout?: number;
  seed?: number;
  /**
   * k-fold cross-validation instead of one held-out part: every row is held out once, and λ is the one
   * with the best mean held-out cosine over all rows. For small data (a head fitted on a user's own
   * images), where one 10 % holdout is too few rows to choose by.
   */
  folds?: number;
}

export interface LinearMapFitOptions {
  /** Relative ridge strength (see above); default 1e-2. 0 is plain least squares (X must be full rank). */
  lambda?: number;
  /** Pick λ by mean cosine on a held-out part of the rows instead of using `lambda`. */
  select?: boolean | LambdaSelection;
  /** Names the data in error messages. */
  label?: string;
  /** Rows accumulated so far (out of the row count). */
  onProgress?: (rows: number) => void;
}

export interface LinearMapInfo {
  clipDim: number;
  textDim: number;
  /** Relative and absolute ridge strength used for the final fit. */
  lambda: number;
  lambdaAbsolute: number;
  /** Rows the final fit used. */
  samples: number;
  /** sha256 of the training matrices (dims + bytes): tells whether a saved map matches a bank. */
  dataHash: string;
  /** Mean cosine of the map's outputs with the targets on (up to 2,000 of) the training rows. */
  fitCosine: number;
  /** Held-out mean cosine per candidate λ, when λ was selected (`folds` with k-fold selection). */
  selection?: { holdout: number; folds?: number; scores: { lambda: number; cosine: number }[] };
}

/** The parts of a PromptBank the map trains on (structural, so this file need not import the bank). */
export interface BankRows {
  clip: Float32Array;
  clipDim: number;
  minilm: Float32Array;
  textDim: number;
  label?: string;
}

/** The data hash `fitOnBank` records for `bank`: compare with a saved map's to tell whether it is stale. */
export function bankDataHash(bank: BankRows): string {
  return hashTrainingData(bank.clip, bank.clipDim, bank.minilm, bank.textDim);
}

export interface FittedFor {
  clipModel: string;
  minilmModel: string;
}

/** sha256 over the shapes and bytes of X [N, dx] and Y [N, dy]. */
export function hashTrainingData(X: Float32Array, dx: number, Y: Float32Array, dy: number): string {
  const h = createHash('sha256');
  h.update(`linear-map-data:${X.length / dx}x${dx}:${Y.length / dy}x${dy}\n`);
  h.update(new Uint8Array(X.buffer, X.byteOffset, X.byteLength));
  h.update(new Uint8Array(Y.buffer, Y.byteOffset, Y.byteLength));
  return h.digest('hex');
}

interface Solved {
  /** [dx + 1, dy]: rows 0..dx-1 are W, row dx is b. */
  weights: Float64Array;
  lambdaAbsolute: number;
}

/** Ridge solution from accumulated products; null if the system is singular. */
function solveRidge(p: CrossProducts, dx: number, dy: number, lambda: number): Solved | null {
  const n = p.rows;
  const mx = p.sumX.map((s) => s / n);
  const my = p.sumY.map((s) => s / n);
  // Centred products: XcᵀXc = XᵀX − n·x̄x̄ᵀ, XcᵀYc = XᵀY − n·x̄ȳᵀ.
  const A = new Float64Array(dx * dx);
  let trace = 0;
  for (let i = 0; i < dx; i++) {
    for (let j = 0; j < dx; j++) A[i * dx + j] = p.xx[i * dx + j] - n * mx[i] * mx[j];
    trace += A[i * dx + i];
  }
  const lambdaAbsolute = (lambda * trace) / dx;
  for (let i = 0; i < dx; i++) A[i * dx + i] += lambdaAbsolute;
  const C = new Float64Array(dx * dy);
  for (let i = 0; i < dx; i++) for (let j = 0; j < dy; j++) C[i * dy + j] = p.xy[i * dy + j] - n * mx[i] * my[j];
  const L = cholesky(A, dx);
  if (!L) return null;
  const W = choleskySolve(L, dx, C, dy);
  const weights = new Float64Array((dx + 1) * dy);
  weights.set(W);
  for (let j = 0; j < dy; j++) {
    let b = my[j];
    for (let i = 0; i < dx; i++) b -= mx[i] * W[i * dy + j];
    weights[dx * dy + j] = b;
  }
  return { weights, lambdaAbsolute };
}

/** x·W + b for rows `rowIndex` (or all) of X; out [rows, dy]. */
function affine(weights: ArrayLike<number>, dx: number, dy: number, X: Float32Array, rowIndex: ArrayLike<number> | null): Float32Array {
  const n = rowIndex ? rowIndex.length : X.length / dx;
  const out = new Float32Array(n * dy);
  // Wᵀ with rows padded to a multiple of 4, so each output is a dot product of two contiguous rows.
  const py = Math.ceil(dy / 4) * 4;
  const wt = new Float64Array(py * dx);
  for (let i = 0; i < dx; i++) for (let j = 0; j < dy; j++) wt[j * dx + i] = weights[i * dy + j];
  const BLOCK = 64;
  const xs = new Float64Array(BLOCK * dx);
  const ys = new Float64Array(BLOCK * py);
  for (let r0 = 0; r0 < n; r0 += BLOCK) {
    const count = Math.min(BLOCK, n - r0);
    xs.fill(0);
    for (let r = 0; r < count; r++) {
      const o = (rowIndex ? rowIndex[r0 + r] : r0 + r) * dx;
      for (let i = 0; i < dx; i++) xs[r * dx + i] = X[o + i];
    }
    rowsTimesRows(xs, count + (count % 2), wt, py, dx, ys);
    for (let r = 0; r < count; r++) {
      for (let j = 0; j < dy; j++) out[(r0 + r) * dy + j] = ys[r * py + j] + weights[dx * dy + j];
    }
  }
  return out;
}

/** Mean cosine between predicted rows and rows `rowIndex` of Y. */
function meanCosine(pred: Float32Array, Y: Float32Array, dy: number, rowIndex: ArrayLike<number>): number {
  let sum = 0;
  for (let r = 0; r < rowIndex.length; r++) {
    const oy = rowIndex[r] * dy;
    let d = 0, np = 0, ny = 0;
    for (let j = 0; j < dy; j++) {
      const a = pred[r * dy + j];
      const b = Y[oy + j];
      d += a * b;
      np += a * a;
      ny += b * b;
    }
    sum += np > 0 && ny > 0 ? d / Math.sqrt(np * ny) : 0;
  }
  return rowIndex.length > 0 ? sum / rowIndex.length : 0;
}

export class LinearMap {
  private constructor(
    /** [clipDim + 1, textDim] float32: W, then the bias row. */
    readonly weights: Float32Array,
    readonly info: LinearMapInfo,
    readonly fittedFor?: FittedFor,
  ) {}

  get clipDim(): number {
    return this.info.clipDim;
  }

  get textDim(): number {
    return this.info.textDim;
  }

  /**
   * Fit on X [N, clipDim] (CLIP text embeddings) and Y [N, textDim] (MiniLM embeddings), used as
   * given: pass unit rows (PromptBank keeps them so) to match what `apply` feeds the map.
   */
  static fit(X: Float32Array, clipDim: number, Y: Float32Array, textDim: number, options: LinearMapFitOptions = {}): LinearMap {
    const label = options.label ?? 'linear map';
    const n = checkRows(X, clipDim, 'CLIP text embeddings', label);
    checkRows(Y, textDim, 'MiniLM embeddings', label, n);
    for (let i = 0; i < X.length; i++) if (!Number.isFinite(X[i])) throw new Img2PromptError(label, `CLIP text embedding of row ${Math.floor(i / clipDim)} is not finite`);
    for (let i = 0; i < Y.length; i++) if (!Number.isFinite(Y[i])) throw new Img2PromptError(label, `MiniLM embedding of row ${Math.floor(i / textDim)} is not finite`);
    if (n < 2) throw new Img2PromptError(label, `need at least 2 rows to fit a linear map, got ${n}`);
    const checkLambda = (l: number): void => {
      if (!(Number.isFinite(l) && l >= 0)) throw new Img2PromptError(label, `lambda must be a finite number >= 0, got ${l}`);
    };

    const all = crossProducts(X, clipDim, Y, textDim, null, options.onProgress);
    let lambda = options.lambda ?? DEFAULT_LAMBDA;
    checkLambda(lambda);
    let selection: LinearMapInfo['selection'];
    if (options.select) {
      const s: LambdaSelection = options.select === true ? {} : options.select;
      const candidates = s.candidates ?? DEFAULT_LAMBDA_CANDIDATES;
      if (candidates.length === 0) throw new Img2PromptError(label, 'no lambda candidates to select from');
      candidates.forEach(checkLambda);
      const order = seededPermutation(n, s.seed ?? 0);
      let parts: Int32Array[];
      if (s.folds !== undefined) {
        if (!(Number.isInteger(s.folds) && s.folds >= 2 && s.folds <= n)) throw new Img2PromptError(label, `${n} rows cannot be split into ${s.folds} folds (need 2 ≤ folds ≤ rows)`);
        const k = s.folds;
        parts = Array.from({ length: k }, (_, f) => order.filter((_, pos) => pos % k === f));
      } else {
        const fraction = s.fraction ?? 0.1;
        if (!(fraction > 0 && fraction < 1)) throw new Img2PromptError(label, `holdout fraction must be between 0 and 1, got ${fraction}`);
        const holdCount = Math.min(s.maxHoldout ?? 5000, Math.max(1, Math.round(n * fraction)));
        if (n - holdCount < 2) throw new Img2PromptError(label, `${n} rows are too few to hold out ${holdCount} for lambda selection`);
        parts = [order.subarray(0, holdCount)];
      }
      // Held-out cosine summed over the parts (weighted by their rows when there are several), per
      // candidate; -Infinity once a candidate is singular.
      const weight = (rows: number): number => (parts.length === 1 ? 1 : rows);
      const sums = candidates.map(() => 0);
      for (const hold of parts) {
        // The training products are the whole minus the held-out rows: no second pass over the rows.
        const train = subtractProducts(all, crossProducts(X, clipDim, Y, textDim, hold));
        candidates.forEach((l, c) => {
          const solved = solveRidge(train, clipDim, textDim, l);
          sums[c] += solved ? meanCosine(affine(solved.weights, clipDim, textDim, X, hold), Y, textDim, hold) * weight(hold.length) : -Infinity;
        });
      }
      const held = parts.reduce((t, p) => t + p.length, 0);
      const scores = candidates.map((l, c) => ({ lambda: l, cosine: sums[c] / weight(held) }));
      const best = scores.reduce((a, b) => (b.cosine > a.cosine ? b : a));
      if (best.cosine === -Infinity) throw new Img2PromptError(label, 'XᵀX is singular for every lambda candidate; include a positive lambda');
      lambda = best.lambda;
      selection = { holdout: parts.length === 1 ? held : Math.round(held / parts.length), ...(s.folds !== undefined ? { folds: s.folds } : {}), scores };
    }
    const solved = solveRidge(all, clipDim, textDim, lambda);
    if (!solved) {
      throw new Img2PromptError(label, `XᵀX is singular (${n} rows of dimension ${clipDim}${n <= clipDim ? ', fewer rows than dimensions' : ''}); use lambda > 0`);
    }
    const sample = n <= 2000 ? Int32Array.from({ length: n }, (_, i) => i) : seededPermutation(n, 1).subarray(0, 2000);
    const fitCosine = meanCosine(affine(solved.weights, clipDim, textDim, X, sample), Y, textDim, sample);
    const info: LinearMapInfo = {
      clipDim,
      textDim,
      lambda,
      lambdaAbsolute: solved.lambdaAbsolute,
      samples: n,
      dataHash: hashTrainingData(X, clipDim, Y, textDim),
      fitCosine,
      ...(selection ? { selection } : {}),
    };
    return new LinearMap(Float32Array.from(solved.weights), info);
  }

  /**
   * A map from weights kept elsewhere ([clipDim + 1, textDim], bias last) and the info they were
   * fitted with: how a fitted head (head-file.ts) carries its ridge solution inside its own file.
   */
  static fromWeights(weights: Float32Array, info: LinearMapInfo, fittedFor?: FittedFor): LinearMap {
    if (weights.length !== (info.clipDim + 1) * info.textDim) throw new Error(`internal: ${weights.length} map weights for [${info.clipDim + 1}, ${info.textDim}]`);
    return new LinearMap(weights, info, fittedFor);
  }

  /** Fit on a prompt bank's unit CLIP and MiniLM rows (what `apply` expects); see `bankDataHash`. */
  static fitOnBank(bank: BankRows, options: LinearMapFitOptions = {}): LinearMap {
    return LinearMap.fit(bank.clip, bank.clipDim, bank.minilm, bank.textDim, { label: bank.label, ...options });
  }

  /** The raw affine map x·W + b of rows [B, clipDim], as given (no normalisation). */
  project(rows: Float32Array): Float32Array {
    checkRows(rows, this.clipDim, 'embeddings', 'linear map');
    return affine(this.weights, this.clipDim, this.textDim, rows, null);
  }

  /**
   * Predict MiniLM vectors [B, textDim] (unit rows) for image embeddings [B, clipDim]: each image is
   * normalised, moved by the modality gap when one is given, renormalised, mapped, and normalised.
   * Unusable images (zero/non-finite) come out as zero rows, for the ensemble to treat as missing.
   */
  apply(images: Float32Array, options: { gap?: Float32Array } = {}): Float32Array {
    checkRows(images, this.clipDim, 'image embeddings', 'linear map');
    const gap = options.gap ?? new Float32Array(this.clipDim);
    if (gap.length !== this.clipDim) throw new Img2PromptError('linear map', `modality gap has dimension ${gap.length}, expected ${this.clipDim}`, { code: 'MODEL_MISMATCH' });
    const corrected = removeModalityGap(images, gap);
    const out = affine(this.weights, this.clipDim, this.textDim, corrected, null);
    const rows = images.length / this.clipDim;
    for (let r = 0; r < rows; r++) {
      let usable = false;
      for (let i = r * this.clipDim; i < (r + 1) * this.clipDim; i++) if (corrected[i] !== 0) { usable = true; break; }
      if (!usable || !normalizeRowInPlace(out, r, this.textDim)) out.fill(0, r * this.textDim, (r + 1) * this.textDim);
    }
    return out;
  }

  /**
   * Save as `<file>` (JSON: dims, λ, data hash, models, the weights file's sha256) and `<file minus
   * .json>.weights.npy` ([clipDim + 1, textDim] float32, bias last). The npy is written first, so a
   * JSON on disk always names a complete weights file.
   */
  async save(file: string, fittedFor: FittedFor): Promise<void> {
    const npyFile = weightsFileFor(file);
    await writeNpy(npyFile, this.weights, [this.clipDim + 1, this.textDim]);
    const bytes = await fs.readFile(npyFile);
    const manifest: LinearMapManifest = {
      format: MANIFEST_FORMAT,
      version: MANIFEST_VERSION,
      fittedFor,
      weightsFile: path.basename(npyFile),
      weightsSha256: createHash('sha256').update(bytes).digest('hex'),
      ...this.info,
      date: new Date().toISOString(),
    };
    await writeFileAtomic(file, `${JSON.stringify(sealJson({ ...manifest }), null, 2)}\n`);
  }

  /**
   * Load a saved map. With `expect`, a map fitted for other CLIP or MiniLM models is an error: its
   * weights belong to another embedding space, even where the dimensions happen to agree.
   */
  static async load(file: string, expect?: Partial<FittedFor> & { dataHash?: string }): Promise<LinearMap> {
    let manifest: LinearMapManifest;
    try {
      manifest = JSON.parse(await fs.readFile(file, 'utf8')) as LinearMapManifest;
    } catch (err) {
      throw new Img2PromptError(file, `cannot read linear map: ${errorMessage(err)}`, { code: 'FILE_UNREADABLE', cause: err });
    }
    if (manifest?.format !== MANIFEST_FORMAT || (manifest.version !== 1 && manifest.version !== MANIFEST_VERSION)) {
      throw new Img2PromptError(file, `not a linear map manifest (format ${JSON.stringify(manifest?.format)}, version ${JSON.stringify(manifest?.version)})`, { code: 'FILE_INVALID' });
    }
    // Version 1 kept no hash of its own fields, only of the weights file.
    const damaged = manifest.version === 1 ? undefined : sealProblem(manifest);
    if (damaged) throw new Img2PromptError(file, `linear map manifest: ${damaged}; refit it`, { code: 'FILE_INVALID' });
    const { clipDim, textDim, fittedFor } = manifest;
    if (!(Number.isInteger(clipDim) && clipDim > 0 && Number.isInteger(textDim) && textDim > 0)) {
      throw new Img2PromptError(file, 'linear map manifest has bad dimensions', { code: 'FILE_INVALID' });
    }
    for (const key of ['clipModel', 'minilmModel'] as const) {
      const want = expect?.[key];
      if (want !== undefined && fittedFor?.[key] !== want) {
        throw new Img2PromptError(file, `linear map was fitted for ${key} '${fittedFor?.[key]}', this run uses '${want}'; refit it`, { code: 'MODEL_MISMATCH' });
      }
    }
    if (expect?.dataHash !== undefined && manifest.dataHash !== expect.dataHash) {
      throw new Img2PromptError(file, 'linear map was fitted on a different prompt bank (data hash differs); refit it', { code: 'MODEL_MISMATCH' });
    }
    const npyFile = path.join(path.dirname(file), manifest.weightsFile);
    let bytes: Buffer;
    try {
      bytes = await fs.readFile(npyFile);
    } catch (err) {
      throw new Img2PromptError(npyFile, `cannot read linear map weights: ${errorMessage(err)}`, { code: 'FILE_UNREADABLE', cause: err });
    }
    if (createHash('sha256').update(bytes).digest('hex') !== manifest.weightsSha256) {
      throw new Img2PromptError(npyFile, `weights do not match ${path.basename(file)} (sha256 differs: changed or damaged since they were saved, or not saved together); refit it`, { code: 'FILE_INVALID' });
    }
    const { data, shape } = await readNpy(npyFile, { expectDims: 2 });
    if (shape[0] !== clipDim + 1 || shape[1] !== textDim) {
      throw new Img2PromptError(npyFile, `weights have shape [${shape.join(', ')}], the manifest says [${clipDim + 1}, ${textDim}]`, { code: 'FILE_INVALID' });
    }
    const { format: _f, version: _v, fittedFor: _m, weightsFile: _w, weightsSha256: _s, date: _d, sha256: _seal, ...info } = manifest;
    return new LinearMap(data, info, fittedFor);
  }
}

const MANIFEST_FORMAT = 'img2prompt-linear-map';
/** Version 2 seals the manifest with the sha256 of its own fields (src/util/sealed-json.ts). */
const MANIFEST_VERSION = 2;

interface LinearMapManifest extends LinearMapInfo {
  [field: string]: unknown;
  format: string;
  version: number;
  fittedFor: FittedFor;
  weightsFile: string;
  weightsSha256: string;
  date: string;
  sha256?: string;
}

/** `map.json` → `map.weights.npy` beside it. */
export function weightsFileFor(file: string): string {
  const base = file.endsWith('.json') ? file.slice(0, -'.json'.length) : file;
  return `${base}.weights.npy`;
}

import { topk as nativeTopk } from '../rank/topk.js';
import type { BankRanker } from '../rank/bank-ranker.js';
import { Img2PromptError } from '../util/errors.js';
import { fallbackVector } from './ensemble.js';
import { checkRows, checkShape, isUsableRow, normalizeRowInPlace, rowDefect, unitRows, type Rows } from '../util/rows.js';

/**
 * The prompt-bank kNN member: real prompts with known CLIP text embeddings and known MiniLM
 * embeddings. An image's CLIP embedding finds its k most similar prompts in CLIP space; their MiniLM
 * vectors, weighted by a softmax over the similarities, are the prediction. It lands on real prompt
 * phrasing, which is where the metric's truth lives.
 */

export interface PromptBankData {
  /** The prompts, one per row. */
  texts: readonly string[];
  /**
   * CLIP text embeddings [N, clipDim]: unit rows as the tower and the bank cache give them (used in
   * place); rows of any other length are normalised into a copy, once per bank.
   */
  clip: Rows;
  /** MiniLM embeddings [N, textDim] (textDim 384 for all-MiniLM-L6-v2); unit rows as for `clip`. */
  minilm: Rows;
  /** Names the bank in error messages (e.g. its cache file). */
  label?: string;
}

export interface PromptBankOptions {
  /** Neighbours averaged per image; default 16. */
  k?: number;
  /**
   * Softmax temperature over the neighbours' cosine similarities; default 0.02. Smaller trusts the
   * nearest prompt more; 0 uses the nearest prompt alone.
   */
  temperature?: number;
  /** Threads for the native search (0/unset: all). */
  threads?: number;
}

/** Top-k search: the k rows of `bank` with the highest dot product with each query, best first. */
export type NeighbourSearch = (
  queries: Rows,
  bank: Rows,
  k: number,
  options: { threads?: number; label?: string },
) => Promise<{ k: number; indices: Int32Array; scores: Float32Array }>;

export interface NearestPrompt {
  index: number;
  text: string;
  /** Cosine similarity between the image and the prompt in CLIP space. */
  score: number;
}

export interface PromptBankPrediction {
  /** [B, textDim] unit rows; images that could not be used get the bank's mean direction. */
  vectors: Float32Array;
  /** The most similar prompt per image (a readable guess); null for unusable images. */
  nearest: (NearestPrompt | null)[];
  /** Neighbours per image [B, k], best first, and their cosines. */
  neighbours: { k: number; indices: Int32Array; scores: Float32Array };
  /** Rows of the input that had no direction (zero or not finite). */
  unusable: number[];
}

export const DEFAULT_BANK_K = 16;
export const DEFAULT_BANK_TEMPERATURE = 0.02;

/**
 * Softmax of `scores / temperature`, shifted by the maximum so large scores cannot overflow.
 * Temperature 0 is the limit: all weight on the first maximum.
 */
export function softmaxWeights(scores: ArrayLike<number>, temperature: number): Float64Array {
  const n = scores.length;
  const w = new Float64Array(n);
  if (n === 0) return w;
  let best = 0;
  for (let i = 1; i < n; i++) if (scores[i] > scores[best]) best = i;
  if (temperature === 0) {
    w[best] = 1;
    return w;
  }
  const top = scores[best];
  let sum = 0;
  for (let i = 0; i < n; i++) {
    w[i] = Math.exp((scores[i] - top) / temperature);
    sum += w[i];
  }
  for (let i = 0; i < n; i++) w[i] /= sum;
  return w;
}

export class PromptBank {
  readonly texts: readonly string[];
  readonly size: number;
  readonly clipDim: number;
  readonly textDim: number;
  readonly label: string;
  /** Unit-length CLIP text rows (the search runs on dot products = cosines). */
  readonly clip: Float32Array;
  /** Unit-length MiniLM rows. */
  readonly minilm: Float32Array;
  private search: NeighbourSearch;
  private ranker: BankRanker | undefined;
  private fallback: Float32Array | undefined;

  /** `search` defaults to the native top-k kernel (src/rank/topk.ts). */
  constructor(data: PromptBankData, search: NeighbourSearch = nativeTopk) {
    const label = data.label ?? 'prompt bank';
    const n = data.texts.length;
    if (n === 0) throw new Img2PromptError(label, 'prompt bank is empty');
    checkShape(data.clip, 'CLIP text embeddings', label, n);
    checkShape(data.minilm, 'MiniLM embeddings', label, n);
    for (let r = 0; r < n; r++) {
      if (!isUsableRow(data.clip.data, r, data.clip.dim)) throw new Img2PromptError(label, `CLIP embedding of prompt ${r} is zero or not finite`);
      if (!isUsableRow(data.minilm.data, r, data.minilm.dim)) throw new Img2PromptError(label, `MiniLM embedding of prompt ${r} is zero or not finite`);
    }
    this.texts = data.texts;
    this.size = n;
    this.clipDim = data.clip.dim;
    this.textDim = data.minilm.dim;
    this.label = label;
    this.clip = unitRows(data.clip);
    this.minilm = unitRows(data.minilm);
    this.search = search;
  }

  /**
   * Searches with a ranker that holds this bank's CLIP rows (a MatMul+TopK session on the GPU, opened
   * with `openBankRanker(bank.clipMatrix())`); the bank closes it. A 'native' ranker changes nothing.
   */
  useRanker(ranker: BankRanker): void {
    if (ranker.engine === 'native') return;
    this.ranker?.close();
    this.ranker = ranker;
    this.search = (queries, _bank, k) => ranker.rank(queries, k);
  }

  /** The unit-length CLIP rows as a [size, clipDim] matrix. */
  clipMatrix(): Rows {
    return { data: this.clip, rows: this.size, dim: this.clipDim };
  }

  /** Frees the GPU ranker, if any; the bank stays usable on the native kernel. */
  close(): void {
    this.ranker?.close();
    this.ranker = undefined;
    this.search = nativeTopk;
  }

  /** The mean MiniLM direction of the bank, unit length: the best constant guess, used for failed images. */
  meanTextVector(): Float32Array {
    this.fallback ??= fallbackVector(this.minilm, this.textDim, this.label);
    return this.fallback;
  }

  /**
   * Predict MiniLM vectors for image embeddings [B, clipDim]. The image tower's unit rows (zero rows
   * allowed: they are unusable) are searched in place; a batch with rows of any other length or a
   * non-finite row is searched through a normalised copy.
   */
  async predict(images: Float32Array, options: PromptBankOptions = {}): Promise<PromptBankPrediction> {
    const k = options.k ?? DEFAULT_BANK_K;
    const temperature = options.temperature ?? DEFAULT_BANK_TEMPERATURE;
    if (!Number.isInteger(k) || k < 1) throw new Img2PromptError(this.label, `k must be a positive integer, got ${k}`);
    if (!(Number.isFinite(temperature) && temperature >= 0)) {
      throw new Img2PromptError(this.label, `temperature must be a finite number >= 0, got ${temperature}`);
    }
    const rows = checkRows(images, this.clipDim, 'image embeddings', this.label);
    const dim = this.textDim;

    // Unusable rows are searched as zero vectors (harmless) and replaced by the fallback below.
    const unusable: number[] = [];
    let queries = images;
    for (let r = 0; r < rows; r++) {
      const defect = rowDefect(images, r, this.clipDim);
      if (defect === 'zero') unusable.push(r);
      else if (defect !== undefined) {
        queries = new Float32Array(images);
        unusable.length = 0;
        for (let q = 0; q < rows; q++) {
          if (!normalizeRowInPlace(queries, q, this.clipDim)) {
            unusable.push(q);
            queries.fill(0, q * this.clipDim, (q + 1) * this.clipDim);
          }
        }
        break;
      }
    }
    const found = await this.search(
      { data: queries, rows, dim: this.clipDim },
      this.clipMatrix(),
      Math.min(k, this.size),
      { threads: options.threads, label: this.label },
    );

    const kk = found.k;
    const vectors = new Float32Array(rows * dim);
    const nearest: (NearestPrompt | null)[] = new Array(rows);
    const acc = new Float64Array(dim);
    const bad = new Set(unusable);
    for (let r = 0; r < rows; r++) {
      if (bad.has(r)) {
        vectors.set(this.meanTextVector(), r * dim);
        nearest[r] = null;
        continue;
      }
      const idx = found.indices.subarray(r * kk, (r + 1) * kk);
      const w = softmaxWeights(found.scores.subarray(r * kk, (r + 1) * kk), temperature);
      acc.fill(0);
      for (let j = 0; j < kk; j++) {
        if (w[j] === 0) continue;
        const o = idx[j] * dim;
        for (let i = 0; i < dim; i++) acc[i] += w[j] * this.minilm[o + i];
      }
      const out = vectors.subarray(r * dim, (r + 1) * dim);
      for (let i = 0; i < dim; i++) out[i] = acc[i];
      // Opposite neighbours could cancel exactly; the nearest prompt is then the honest answer.
      if (!normalizeRowInPlace(vectors, r, dim)) out.set(this.minilm.subarray(idx[0] * dim, (idx[0] + 1) * dim));
      nearest[r] = { index: idx[0], text: this.texts[idx[0]], score: found.scores[r * kk] };
    }
    return { vectors, nearest, neighbours: { k: kk, indices: found.indices, scores: found.scores }, unusable };
  }
}

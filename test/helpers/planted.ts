import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ClipTextSide, EmbeddedBank, LabelBankDef } from '../../src/interrogate/types.js';
import { seededRandom } from '../../src/predict/seeded.js';

/**
 * A fake CLIP text side with planted embeddings, so every interrogation mode has a computable answer.
 *
 * - A single label (or any comma-free piece of text) embeds to a random unit vector seeded by the
 *   text itself, so the same text gives the same vector in every process.
 * - A prompt embeds to the normalised sum of its ", "-separated pieces. With `knownLabels`, a piece
 *   that is two known labels side by side ("a photo by X", classic's "medium artist" slot) counts
 *   as both labels.
 * - countTokens is words + 2 (start and end tokens).
 *
 * An image "showing" labels A, B, C is then normalise(v(A) + v(B) + v(C)) plus a little noise: in
 * high dimension unrelated vectors are nearly orthogonal, so A, B, C are the labels most similar to
 * it, and adding anything else to a prompt of A, B, C lowers its similarity.
 */
export interface PlantedOptions {
  dim?: number;
  seed?: string;
  modelId?: string;
  weightHash?: string;
  tokenizerId?: string;
  /** Delay per encodeTexts call, to make builds slow enough to interrupt. */
  delayMs?: number;
  knownLabels?: Iterable<string>;
}

export class PlantedTextSide implements ClipTextSide {
  readonly dim: number;
  readonly modelId: string;
  readonly weightHash: string;
  readonly tokenizerId: string;
  /** Every encodeTexts call's texts, in order. */
  readonly calls: string[][] = [];
  private readonly seed: string;
  private readonly delayMs: number;
  private readonly known: Set<string>;
  private readonly cache = new Map<string, Float32Array>();

  constructor(options: PlantedOptions = {}) {
    this.dim = options.dim ?? 128;
    this.seed = options.seed ?? 'planted';
    this.modelId = options.modelId ?? 'planted/test-model';
    this.weightHash = options.weightHash ?? 'planted-weights-1';
    this.tokenizerId = options.tokenizerId ?? 'planted-tokenizer-1';
    this.delayMs = options.delayMs ?? 0;
    this.known = new Set(options.knownLabels ?? []);
  }

  /** Teach the parser more labels (for "medium artist" pieces). */
  know(labels: Iterable<string>): void {
    for (const l of labels) this.known.add(l);
  }

  /** The planted unit vector of one piece of text. */
  vector(text: string): Float32Array {
    let v = this.cache.get(text);
    if (v) return v;
    const h = createHash('sha256').update(this.seed).update('\0').update(text).digest();
    const next = seededRandom(h.readUInt32LE(0) ^ h.readUInt32LE(4));
    v = new Float32Array(this.dim);
    let sum = 0;
    for (let d = 0; d < this.dim; d++) {
      const g = Math.sqrt(-2 * Math.log(next() + 1e-12)) * Math.cos(2 * Math.PI * next());
      v[d] = g;
      sum += g * g;
    }
    const inv = 1 / Math.sqrt(sum);
    for (let d = 0; d < this.dim; d++) v[d] *= inv;
    this.cache.set(text, v);
    return v;
  }

  /** The labels a prompt is read as. */
  pieces(text: string): string[] {
    const out: string[] = [];
    for (const piece of text.split(', ').map((p) => p.trim()).filter((p) => p !== '')) {
      if (!this.known.has(piece)) {
        const words = piece.split(' ');
        let split = false;
        for (let at = 1; at < words.length && !split; at++) {
          const a = words.slice(0, at).join(' ');
          const b = words.slice(at).join(' ');
          if (this.known.has(a) && this.known.has(b)) {
            out.push(a, b);
            split = true;
          }
        }
        if (split) continue;
      }
      out.push(piece);
    }
    return out;
  }

  /** Normalised sum of the planted vectors of `labels`. */
  sumOf(labels: readonly string[]): Float32Array {
    const out = new Float32Array(this.dim);
    for (const l of labels) {
      const v = this.vector(l);
      for (let d = 0; d < this.dim; d++) out[d] += v[d];
    }
    return normalise(out);
  }

  embedPrompt(text: string): Float32Array {
    return this.sumOf(this.pieces(text));
  }

  async encodeTexts(texts: string[], opts?: { onProgress?(done: number): void }): Promise<Float32Array> {
    this.calls.push([...texts]);
    if (this.delayMs > 0) await sleep(this.delayMs);
    const out = new Float32Array(texts.length * this.dim);
    texts.forEach((t, i) => {
      out.set(this.embedPrompt(t), i * this.dim);
      if ((i + 1) % 256 === 0) opts?.onProgress?.(i + 1);
    });
    opts?.onProgress?.(texts.length);
    return out;
  }

  countTokens(text: string): number {
    const words = text.trim() === '' ? 0 : text.trim().split(/\s+/).length;
    return words + 2;
  }

  /** Texts passed to encodeTexts so far, flattened. */
  encodedTexts(): string[] {
    return this.calls.flat();
  }
}

export function normalise(v: Float32Array): Float32Array {
  let sum = 0;
  for (const x of v) sum += x * x;
  const inv = 1 / Math.sqrt(sum);
  for (let d = 0; d < v.length; d++) v[d] *= inv;
  return v;
}

export function cosine(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let d = 0; d < a.length; d++) s += a[d] * b[d];
  return s;
}

/**
 * An image embedding that shows `labels` (and, weighted negatively, `against`): the normalised sum
 * of their planted vectors plus seeded gaussian noise of norm about `noise`.
 */
export function plantedImage(side: PlantedTextSide, labels: readonly string[], options: { noise?: number; seed?: string; against?: readonly string[] } = {}): Float32Array {
  const out = new Float32Array(side.dim);
  for (const l of labels) out.set(out.map((x, d) => x + side.vector(l)[d]));
  for (const l of options.against ?? []) out.set(out.map((x, d) => x - side.vector(l)[d]));
  normalise(out);
  const noise = side.vector(`noise:${options.seed ?? 'n'}`);
  const scale = options.noise ?? 0.05;
  for (let d = 0; d < side.dim; d++) out[d] += scale * noise[d];
  return normalise(out);
}

/**
 * An image embedding that shows each label with its own weight (negative: the image is "against" it):
 * normalise(sum of weight * planted vector), no noise. Strictly ordered weights make the greedy chain's
 * steps predictable: each step adds the remaining label of largest weight (smallest, for negative).
 */
export function weightedImage(side: PlantedTextSide, weighted: readonly (readonly [string, number])[]): Float32Array {
  const out = new Float32Array(side.dim);
  for (const [label, w] of weighted) {
    const v = side.vector(label);
    for (let d = 0; d < side.dim; d++) out[d] += w * v[d];
  }
  return normalise(out);
}

/** A bank embedded directly by the planted side, fp32, no cache. */
export function plantedBank(side: PlantedTextSide, def: LabelBankDef): EmbeddedBank {
  const matrix = new Float32Array(def.labels.length * side.dim);
  def.labels.forEach((l, i) => matrix.set(side.embedPrompt(l), i * side.dim));
  return { ...def, dtype: 'fp32', matrix: { data: matrix, rows: def.labels.length, dim: side.dim } };
}

/** Words like "w17-3" that never collide with each other; `prefix` keeps banks apart. */
export function syntheticLabels(prefix: string, count: number, wordsPerLabel = 1): string[] {
  return Array.from({ length: count }, (_, i) => Array.from({ length: wordsPerLabel }, (_, w) => `${prefix}${i}${w === 0 ? '' : `w${w}`}`).join(' '));
}

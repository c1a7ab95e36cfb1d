import { Session, defaultProviders, tensor, type SessionOptions } from '../runtime/session.js';
import { precisionFor, requestedPrecision, type Precision } from '../runtime/precision.js';
import { Img2PromptError } from '../util/errors.js';
import { readOptions } from '../util/options.js';
import { ensureMiniLMOnnx } from '../../models/graph/bert.js';
import { MiniLMTokenizer } from './minilm-tokenizer.js';
import type { TextEmbedder } from './embedder.js';

export interface MiniLMEmbedOptions {
  /** Texts per inference call (default 64). */
  batchSize?: number;
  /** Called after each batch with the number of texts finished so far and the total. */
  onProgress?: (done: number, total: number) => void;
}

/**
 * Token ids of many texts in one flat buffer (a million prompts as a million small arrays would cost
 * several times the memory).
 */
class PackedSequences {
  readonly offsets: Uint32Array;
  private ids = new Int32Array(1 << 16);
  private used = 0;

  constructor(count: number) {
    this.offsets = new Uint32Array(count + 1);
  }

  set(index: number, seq: readonly number[]): void {
    if (this.used + seq.length > this.ids.length) {
      const grown = new Int32Array(Math.max(this.ids.length * 2, this.used + seq.length));
      grown.set(this.ids.subarray(0, this.used));
      this.ids = grown;
    }
    this.ids.set(seq, this.used);
    this.used += seq.length;
    this.offsets[index + 1] = this.used;
  }

  length(index: number): number {
    return this.offsets[index + 1]! - this.offsets[index]!;
  }

  get(index: number): Int32Array {
    return this.ids.subarray(this.offsets[index]!, this.offsets[index + 1]!);
  }
}

/**
 * all-MiniLM-L6-v2 sentence embeddings (the Kaggle metric's space) on the native runtime. The ONNX
 * graph is built from the model's safetensors on first use (see models/graph/bert.ts).
 */
export class MiniLMEmbedder implements TextEmbedder {
  private constructor(
    private readonly session: Session,
    readonly tokenizer: MiniLMTokenizer,
    readonly dim: number,
    readonly precision: Precision,
  ) {}

  /**
   * `modelDir` holds config.json, model.safetensors and tokenizer.json (e.g. `modelDir('minilm')`).
   * Precision as for CLIP (ClipOpenOptions.precision): given, IMG2PROMPT_PRECISION, or by provider.
   */
  static async open(modelDir: string, sessionOptions?: SessionOptions, precision?: Precision): Promise<MiniLMEmbedder> {
    const requested = requestedPrecision(precision);
    const embedder = await MiniLMEmbedder.openAs(modelDir, sessionOptions, requested ?? precisionFor(sessionOptions?.providers ?? defaultProviders()));
    if (requested || embedder.precision !== 'fp16' || embedder.provider === 'cuda') return embedder;
    // CUDA was expected but the session fell back to the CPU, where fp16 only adds casts.
    embedder.close();
    return MiniLMEmbedder.openAs(modelDir, sessionOptions, 'fp32');
  }

  private static async openAs(modelDir: string, sessionOptions: SessionOptions | undefined, precision: Precision): Promise<MiniLMEmbedder> {
    const onnxPath = await ensureMiniLMOnnx(modelDir, precision);
    const tokenizer = await MiniLMTokenizer.load(modelDir);
    const session = await Session.open(onnxPath, sessionOptions);
    const out = session.outputs.find((o) => o.name === 'sentence_embedding');
    const dim = out?.dims[1];
    if (typeof dim !== 'number') {
      session.close();
      throw new Img2PromptError(onnxPath, 'model has no sentence_embedding output of fixed width', { code: 'FILE_INVALID' });
    }
    return new MiniLMEmbedder(session, tokenizer, dim, precision);
  }

  get provider(): string {
    return this.session.provider;
  }

  /**
   * Embed `texts`; returns row-major [texts.length, dim] with unit-length rows, in input order. The
   * rows are normalised inside the graph (models/graph/bert.ts ends in an L2 normalisation), so this
   * tower keeps the unit-rows contract of src/util/rows.ts without a pass here; callers must not
   * normalise them again.
   * Texts are batched by token length so little compute goes to padding; padding does not change a
   * text's embedding (the mask removes it), so the result does not depend on the batching.
   */
  async embed(texts: string[], options: MiniLMEmbedOptions = {}): Promise<Float32Array> {
    const o = readOptions(options, 'MiniLMEmbedder.embed()');
    const batchSize = o.int('batchSize', { min: 1 }) ?? 64;
    const onProgress = o.func<NonNullable<MiniLMEmbedOptions['onProgress']>>('onProgress');
    o.done();
    const n = texts.length;
    const out = new Float32Array(n * this.dim);
    if (n === 0) return out;

    const seqs = new PackedSequences(n);
    for (let i = 0; i < n; i++) {
      const t = texts[i];
      if (typeof t !== 'string') throw new TypeError(`texts[${i}] is not a string`);
      seqs.set(i, this.tokenizer.encode(t));
    }
    // Longest first: the largest batch runs (and fails, if memory is short) at the start.
    const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => seqs.length(b) - seqs.length(a) || a - b);

    for (let start = 0; start < n; start += batchSize) {
      const rows = order.slice(start, start + batchSize);
      const seqLen = seqs.length(rows[0]!);
      const ids = new BigInt64Array(rows.length * seqLen).fill(BigInt(this.tokenizer.padId));
      const mask = new BigInt64Array(rows.length * seqLen);
      rows.forEach((src, r) => {
        const s = seqs.get(src);
        for (let j = 0; j < s.length; j++) {
          ids[r * seqLen + j] = BigInt(s[j]!);
          mask[r * seqLen + j] = 1n;
        }
      });
      const dims = [rows.length, seqLen];
      const result = await this.session.run(
        { input_ids: tensor('int64', ids, dims), attention_mask: tensor('int64', mask, dims) },
        { outputNames: ['sentence_embedding'] },
      );
      const emb = result.sentence_embedding!.data as Float32Array;
      rows.forEach((dst, r) => out.set(emb.subarray(r * this.dim, (r + 1) * this.dim), dst * this.dim));
      onProgress?.(Math.min(start + batchSize, n), n);
    }
    return out;
  }

  close(): void {
    this.session.close();
  }
}

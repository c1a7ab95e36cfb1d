import { tensor, type Session, type Tensor } from '../runtime/session.js';
import type { CaptionConfig } from './config.js';
import type { DecoderStepper } from './decoder-stepper.js';
import type { CaptionDecoderIo } from './export-io.js';

/**
 * A ready export's text decoder (export-io.ts) as a DecoderStepper. The image tokens of each image
 * ([images, tokens, width], the image graph's last_hidden_state) are repeated for the image's rows
 * (its beams) and fed at every step. With a cache, a step feeds only the new tokens and the decoder's
 * present keys and values come back as the next past; a decoder without one is fed each row's whole
 * sequence, which the past then carries instead.
 */

/** The image graph's output for one batch of images. */
export interface ImageTokens {
  images: number;
  /** Tokens per image (the patch tokens plus the class token). */
  tokens: number;
  width: number;
  hidden: Float32Array;
}

export interface ExportPast {
  rows: number;
  /** Tokens decoded so far per row. */
  length: number;
  /** Per cached layer [rows, H, length, D]; empty without a cache. */
  keys: Float32Array[];
  values: Float32Array[];
  /** Row-major [rows, length] token ids: what a decoder without a cache is fed again. */
  history: BigInt64Array;
}

export class ExportDecoderStepper implements DecoderStepper<ExportPast> {
  readonly vocabSize: number;
  private readonly heads: number;
  private readonly headDim: number;
  private current: { images: readonly number[]; rows: number; hidden: Tensor } | undefined;

  constructor(
    private readonly decoder: Session,
    private readonly io: CaptionDecoderIo,
    config: CaptionConfig,
    private readonly encoded: ImageTokens,
  ) {
    this.vocabSize = config.text.vocabSize;
    this.heads = config.text.heads;
    this.headDim = config.text.width / config.text.heads;
  }

  /** encoder_hidden_states for `rows` rows over `images`, built once per change of rows. */
  private hiddenFeed(images: readonly number[], rows: number): Tensor {
    const c = this.current;
    if (c && c.rows === rows && c.images.length === images.length && c.images.every((x, i) => x === images[i])) return c.hidden;
    const { tokens, width } = this.encoded;
    const per = tokens * width;
    const perImage = rows / images.length;
    const out = new Float32Array(rows * per);
    images.forEach((image, i) => {
      const src = this.encoded.hidden.subarray(image * per, (image + 1) * per);
      for (let b = 0; b < perImage; b++) out.set(src, (i * perImage + b) * per);
    });
    const hidden = tensor('float32', out, [rows, tokens, width]);
    this.current = { images: [...images], rows, hidden };
    return hidden;
  }

  async step(tokens: BigInt64Array, rows: number, seqLen: number, images: readonly number[], past: ExportPast | undefined) {
    const cached = this.io.cachedLayers > 0;
    const pastLen = past?.length ?? 0;
    const total = pastLen + seqLen;
    const history = appendColumns(past?.history, tokens, rows, pastLen, seqLen);
    const fedLen = cached ? seqLen : total;
    const feeds: Record<string, Tensor> = {
      input_ids: tensor('int64', cached ? tokens : history, [rows, fedLen]),
      encoder_hidden_states: this.hiddenFeed(images, rows),
    };
    // Every row is a full sequence (no padding): the masks are all ones.
    if (this.io.attentionMask) feeds.attention_mask = tensor('int64', new BigInt64Array(rows * total).fill(1n), [rows, total]);
    if (this.io.encoderAttentionMask) feeds.encoder_attention_mask = tensor('int64', new BigInt64Array(rows * this.encoded.tokens).fill(1n), [rows, this.encoded.tokens]);
    if (this.io.useCacheBranch) feeds.use_cache_branch = tensor('bool', new Uint8Array([past ? 1 : 0]), [1]);
    const empty = new Float32Array(0);
    for (let l = 0; l < this.io.cachedLayers; l++) {
      const dims = [rows, this.heads, pastLen, this.headDim];
      feeds[`past_key_values.${l}.key`] = tensor('float32', past ? past.keys[l]! : empty, dims);
      feeds[`past_key_values.${l}.value`] = tensor('float32', past ? past.values[l]! : empty, dims);
    }
    const out = await this.decoder.run(feeds);
    const logits = lastPosition(out.logits!.data as Float32Array, rows, fedLen, this.vocabSize);
    const keys: Float32Array[] = [];
    const values: Float32Array[] = [];
    for (let l = 0; l < this.io.cachedLayers; l++) {
      keys.push(out[`present.${l}.key`]!.data as Float32Array);
      values.push(out[`present.${l}.value`]!.data as Float32Array);
    }
    return { logits, past: { rows, length: total, keys, values, history } };
  }

  selectRows(past: ExportPast, rows: readonly number[]): ExportPast {
    if (rows.length === past.rows && rows.every((r, i) => r === i)) return past;
    const per = this.heads * past.length * this.headDim;
    const gather = <T extends Float32Array | BigInt64Array>(src: T, width: number, make: (n: number) => T): T => {
      const out = make(rows.length * width);
      rows.forEach((r, i) => out.set(src.subarray(r * width, (r + 1) * width) as never, i * width));
      return out;
    };
    return {
      rows: rows.length,
      length: past.length,
      keys: past.keys.map((k) => gather(k, per, (n) => new Float32Array(n))),
      values: past.values.map((v) => gather(v, per, (n) => new Float32Array(n))),
      history: gather(past.history, past.length, (n) => new BigInt64Array(n)),
    };
  }
}

/** [rows, before] ids followed by each row's [seqLen] new ids. */
function appendColumns(before: BigInt64Array | undefined, added: BigInt64Array, rows: number, beforeLen: number, seqLen: number): BigInt64Array {
  const width = beforeLen + seqLen;
  const out = new BigInt64Array(rows * width);
  for (let r = 0; r < rows; r++) {
    if (before) out.set(before.subarray(r * beforeLen, (r + 1) * beforeLen), r * width);
    out.set(added.subarray(r * seqLen, (r + 1) * seqLen), r * width + beforeLen);
  }
  return out;
}

/** The logits of each row's last position out of [rows, seqLen, vocab]. */
function lastPosition(logits: Float32Array, rows: number, seqLen: number, vocab: number): Float32Array {
  if (seqLen === 1) return logits;
  const out = new Float32Array(rows * vocab);
  for (let r = 0; r < rows; r++) out.set(logits.subarray(((r + 1) * seqLen - 1) * vocab, (r + 1) * seqLen * vocab), r * vocab);
  return out;
}

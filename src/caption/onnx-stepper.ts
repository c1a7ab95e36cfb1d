import { tensor, type Session, type Tensor } from '../runtime/session.js';
import type { CaptionConfig } from './config.js';
import type { DecoderStepper } from './decoder-stepper.js';

/**
 * The decoder graph as a DecoderStepper over one batch of encoded images. The image graph's outputs
 * (each layer's image keys and values, [images, H, M, D]) stay as ORT gave them and are fed to every
 * step; only when some images have finished is a compact copy of the remaining ones made, once.
 * The cache is the decoder's own present outputs, fed back as they are unless rows are dropped or
 * beams reordered, when the rows are gathered into new arrays. In fp16 graphs both are half floats
 * (Uint16Array bits, as ORT gives them); the arrays are only moved here, never read.
 */

/** Float32Array, or Uint16Array holding float16 bits. */
export type KvArray = Float32Array | Uint16Array;

/** Per layer [rows, H, length, D] float32 keys and values of the tokens decoded so far. */
export interface KeyValueCache {
  rows: number;
  length: number;
  keys: KvArray[];
  values: KvArray[];
}

/** Per layer [images, H, M, D] keys and values of the images (BLIP's cross-attention, GIT's image prefix). */
export interface ImageKeysValues {
  images: number;
  keys: KvArray[];
  values: KvArray[];
}

export class OnnxDecoderStepper implements DecoderStepper<KeyValueCache> {
  readonly vocabSize: number;
  private readonly heads: number;
  private readonly headDim: number;
  private readonly layers: number;
  private readonly imageTokens: number;
  /** The element type of the image and past keys/values: the decoder graph's precision. */
  private readonly kvType: 'float32' | 'float16';
  private current: { images: readonly number[]; feeds: Record<string, Tensor> } | undefined;

  constructor(
    private readonly decoder: Session,
    config: CaptionConfig,
    private readonly encoded: ImageKeysValues,
    imageTokens: number,
  ) {
    this.vocabSize = config.text.vocabSize;
    this.heads = config.text.heads;
    this.headDim = config.text.width / config.text.heads;
    this.layers = config.text.layers;
    this.imageTokens = imageTokens;
    this.kvType = decoder.inputs.find((i) => i.name === 'past_key_0')?.type === 'float16' ? 'float16' : 'float32';
  }

  /** The image inputs for `images` (indices into the encoded batch), copied out only when not the whole batch in order. */
  private imageFeeds(images: readonly number[]): Record<string, Tensor> {
    if (this.current && sameList(this.current.images, images)) return this.current.feeds;
    const whole = images.length === this.encoded.images && images.every((x, i) => x === i);
    const per = this.heads * this.imageTokens * this.headDim;
    const dims = [images.length, this.heads, this.imageTokens, this.headDim];
    const pick = (src: KvArray) => {
      if (whole) return src;
      const out = emptyLike(src, images.length * per);
      images.forEach((image, i) => out.set(src.subarray(image * per, (image + 1) * per), i * per));
      return out;
    };
    const feeds: Record<string, Tensor> = {};
    for (let l = 0; l < this.layers; l++) {
      feeds[`image_key_${l}`] = tensor(this.kvType, pick(this.encoded.keys[l]!), dims);
      feeds[`image_value_${l}`] = tensor(this.kvType, pick(this.encoded.values[l]!), dims);
    }
    this.current = { images: [...images], feeds };
    return feeds;
  }

  async step(tokens: BigInt64Array, rows: number, seqLen: number, images: readonly number[], past: KeyValueCache | undefined) {
    const H = this.heads;
    const D = this.headDim;
    const pastLen = past?.length ?? 0;
    const feeds: Record<string, Tensor> = { input_ids: tensor('int64', tokens, [rows, seqLen]), ...this.imageFeeds(images) };
    const empty = this.kvType === 'float16' ? new Uint16Array(0) : new Float32Array(0);
    for (let l = 0; l < this.layers; l++) {
      feeds[`past_key_${l}`] = tensor(this.kvType, past ? past.keys[l]! : empty, [rows, H, pastLen, D]);
      feeds[`past_value_${l}`] = tensor(this.kvType, past ? past.values[l]! : empty, [rows, H, pastLen, D]);
    }
    const out = await this.decoder.run(feeds);
    const keys: KvArray[] = [];
    const values: KvArray[] = [];
    for (let l = 0; l < this.layers; l++) {
      keys.push(out[`present_key_${l}`]!.data as KvArray);
      values.push(out[`present_value_${l}`]!.data as KvArray);
    }
    return { logits: out.logits!.data as Float32Array, past: { rows, length: pastLen + seqLen, keys, values } };
  }

  selectRows(past: KeyValueCache, rows: readonly number[]): KeyValueCache {
    if (rows.length === past.rows && rows.every((r, i) => r === i)) return past;
    const per = this.heads * past.length * this.headDim;
    const gather = (src: KvArray) => {
      const out = emptyLike(src, rows.length * per);
      rows.forEach((r, i) => out.set(src.subarray(r * per, (r + 1) * per), i * per));
      return out;
    };
    return { rows: rows.length, length: past.length, keys: past.keys.map(gather), values: past.values.map(gather) };
  }
}

function emptyLike(src: KvArray, length: number): KvArray {
  return src instanceof Uint16Array ? new Uint16Array(length) : new Float32Array(length);
}

function sameList(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

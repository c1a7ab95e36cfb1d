import { Session, tensor, type Tensor } from '../runtime/session.js';
import { padClipBatch } from './tokenizer.js';
import type { ClipConfig } from './config.js';

/**
 * Text embeddings of many token sequences that start alike, through the prefix-cached text graph
 * (models/graph/clip-text.ts `clipTextPrefixGraphBuilder`): the longest common token prefix runs once,
 * batch 1, and gives every layer's keys and values; each sequence then runs only its own remaining
 * tokens against them. A greedy chain step scores hundreds of "<prompt>, <label>" texts whose first
 * 20-70 tokens are the same prompt, so the per-row work shrinks to the label's few tokens.
 *
 * The shared prefix is found on the token ids, not the text, so it is exact whatever the tokenizer
 * does at the join: tokens of the prefix that a candidate merges differently are simply not shared.
 */
export class ClipPrefixEncoder {
  private readonly layers: number;
  private readonly heads: number;
  private readonly headDim: number;

  private readonly dim: number;

  constructor(
    private readonly session: Session,
    config: ClipConfig,
  ) {
    this.dim = config.embedDim;
    this.layers = session.inputs.filter((i) => i.name.startsWith('past_key_')).length;
    this.heads = config.text.heads;
    this.headDim = config.text.width / config.text.heads;
  }

  /**
   * [seqs.length, dim] unit rows: the same embeddings as the full tower gives for each sequence (to
   * float rounding: the attention over prefix and own tokens is summed in two parts). Every sequence
   * must end with its EOT, as ClipTokenizer.encode gives them.
   */
  async encode(seqs: readonly (readonly number[])[], options: { batchSize?: number; padId?: number } = {}): Promise<Float32Array> {
    const out = new Float32Array(seqs.length * this.dim);
    if (seqs.length === 0) return out;
    const prefixLength = sharedPrefixLength(seqs);
    const past = await this.prefixKeysValues(seqs[0]!.slice(0, prefixLength));
    const suffixes = seqs.map((s) => s.slice(prefixLength));
    // Rows sorted by length, so each batch pads to its own longest suffix; ties keep input order.
    const order = suffixes.map((_, i) => i).sort((a, b) => suffixes[a]!.length - suffixes[b]!.length || a - b);
    const batchSize = options.batchSize ?? 256;
    for (let start = 0; start < order.length; start += batchSize) {
      const rows = order.slice(start, start + batchSize);
      const batch = padClipBatch(rows.map((r) => suffixes[r]!), 'longest', options.padId ?? 0);
      const res = await this.session.run(
        { input_ids: tensor('int64', batch.inputIds, [batch.batch, batch.seqLen]), ...past },
        { outputNames: ['text_embeds'] },
      );
      const emb = res.text_embeds!.data as Float32Array;
      rows.forEach((r, i) => out.set(emb.subarray(i * this.dim, (i + 1) * this.dim), r * this.dim));
    }
    return out;
  }

  /** Keys and values of `prefix` in every layer, as past_* feeds: one batch-1 run with an empty past. */
  private async prefixKeysValues(prefix: readonly number[]): Promise<Record<string, Tensor>> {
    const empty = tensor('float32', new Float32Array(0), [1, this.heads, 0, this.headDim]);
    if (prefix.length === 0) {
      return Object.fromEntries(Array.from({ length: this.layers }, (_, i) => [[`past_key_${i}`, empty], [`past_value_${i}`, empty]]).flat());
    }
    const feeds: Record<string, Tensor> = { input_ids: tensor('int64', BigInt64Array.from(prefix, BigInt), [1, prefix.length]) };
    const names: string[] = [];
    for (let i = 0; i < this.layers; i++) {
      feeds[`past_key_${i}`] = empty;
      feeds[`past_value_${i}`] = empty;
      names.push(`present_key_${i}`, `present_value_${i}`);
    }
    const res = await this.session.run(feeds, { outputNames: names });
    const past: Record<string, Tensor> = {};
    for (let i = 0; i < this.layers; i++) {
      past[`past_key_${i}`] = res[`present_key_${i}`]!;
      past[`past_value_${i}`] = res[`present_value_${i}`]!;
    }
    return past;
  }

  close(): void {
    this.session.close();
  }
}

/**
 * Tokens every sequence starts with, leaving each at least its last token (the EOT, where pooling
 * reads) to run as its own part.
 */
export function sharedPrefixLength(seqs: readonly (readonly number[])[]): number {
  let n = Math.min(...seqs.map((s) => s.length)) - 1;
  const first = seqs[0]!;
  for (const s of seqs) {
    let i = 0;
    while (i < n && s[i] === first[i]) i++;
    n = i;
  }
  return Math.max(n, 0);
}

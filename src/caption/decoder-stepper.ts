/**
 * What the searches need from a captioning model: one decoder step over a set of rows, and a way to
 * keep or reorder rows of the key/value cache. Rows are image-major: `images` lists the images (by
 * their index in the batch being captioned) whose rows are fed, each with rows / images.length rows
 * (its beams, or one row when greedy). The model keeps each image's encoding (BLIP's cross keys and
 * values, GIT's image prefix) and shares it among that image's rows.
 */
export interface DecoderStepper<Past> {
  readonly vocabSize: number;
  /**
   * Feeds `tokens` (row-major [rows, seqLen]: the new tokens of each row) after `past` (undefined on
   * the first step) and returns the next-token logits [rows, vocab] and the cache including the new
   * tokens. The logits are the caller's, fresh each step: the searches process them in place.
   */
  step(tokens: BigInt64Array, rows: number, seqLen: number, images: readonly number[], past: Past | undefined): Promise<{ logits: Float32Array; past: Past }>;
  /** The cache restricted to `rows` (indices of the current rows, in their new order; repeats allowed). */
  selectRows(past: Past, rows: readonly number[]): Past;
}

export interface GeneratedCaption {
  /** The whole sequence as transformers returns it: prompt, generated tokens, the end token if one was generated. */
  tokens: number[];
  /** Beam search: the hypothesis' length-penalised score (undefined for greedy search). */
  score?: number;
}

/**
 * A sentence embedder in the Kaggle metric's space (all-MiniLM-L6-v2: 384-d, mean pooled, L2-normalised).
 * Scoring, submission writing and the ensembles only depend on this interface, so they can be tested with
 * a small deterministic fake and run with the real model (`MiniLMEmbedder` in `./minilm.ts`).
 */
export interface TextEmbedder {
  /** Length of each embedding vector. */
  readonly dim: number;
  /**
   * Embed `texts` in order. Returns a row-major `[texts.length, dim]` array whose rows have unit L2 norm.
   * `onProgress` receives the number of texts finished so far; `batchSize` (texts per inference call) is
   * a hint that implementations without batching may ignore.
   */
  embed(texts: string[], options?: { onProgress?: (done: number) => void; batchSize?: number }): Promise<Float32Array>;
  /** Releases native resources, where the implementation holds any. */
  close?(): void;
}

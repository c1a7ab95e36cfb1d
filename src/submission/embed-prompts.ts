import { Img2PromptError } from '../util/errors.js';
import { readOptions } from '../util/options.js';
import type { TextEmbedder } from '../text/embedder.js';
import type { PromptRow } from './prompts-csv.js';

export interface EmbedPromptsOptions {
  /** Prompts per inference batch, passed on to the embedder (its default when absent). */
  batchSize?: number;
  /** Called with the number of prompts embedded so far. */
  onProgress?: (done: number) => void;
}

/**
 * Prompts handed to the embedder per call: large enough that it can group texts of similar length into
 * batches, small enough that token buffers stay modest for test sets of any size.
 */
export const EMBED_CHUNK = 8192;

/**
 * Embed each row's prompt, in row order: row-major `[rows.length, embedder.dim]`. The embedder's output is
 * checked (length, finiteness) so a broken model fails here rather than as a submission full of NaN.
 */
export async function embedPrompts(
  rows: readonly PromptRow[],
  embedder: TextEmbedder,
  options: EmbedPromptsOptions = {},
): Promise<Float32Array> {
  const o = readOptions(options, 'embedPrompts()');
  const batchSize = o.int('batchSize', { min: 1 });
  const onProgress = o.func<(done: number) => void>('onProgress');
  o.done();
  const dim = embedder.dim;
  const out = new Float32Array(rows.length * dim);
  for (let start = 0; start < rows.length; start += EMBED_CHUNK) {
    const chunk = rows.slice(start, start + EMBED_CHUNK);
    const vectors = await embedder.embed(
      chunk.map((r) => r.prompt),
      { batchSize, onProgress: onProgress && ((done: number) => onProgress(start + done)) },
    );
    if (vectors.length !== chunk.length * dim) {
      throw new Img2PromptError(undefined, `embedder returned ${vectors.length} values for ${chunk.length} prompts of dimension ${dim}`);
    }
    for (let i = 0; i < vectors.length; i++) {
      if (!Number.isFinite(vectors[i])) {
        const row = chunk[Math.floor(i / dim)];
        throw new Img2PromptError(undefined, `embedder returned a non-finite value for imgId "${row.imgId}"`);
      }
    }
    out.set(vectors, start * dim);
    onProgress?.(start + chunk.length);
  }
  return out;
}

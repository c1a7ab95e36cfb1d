import { promises as fs } from 'node:fs';
import { Img2PromptError } from '../util/errors.js';
import { modelDir } from '../models/cache.js';
import type { TextEmbedder } from '../text/embedder.js';

export const MINILM_MODEL = 'minilm';

/**
 * Open the metric's own embedder, all-MiniLM-L6-v2, from the model cache. Loaded lazily so commands that
 * never embed (validate, scoring two submissions) do not load the inference runtime.
 */
export async function openMiniLMEmbedder(): Promise<TextEmbedder> {
  const dir = modelDir(MINILM_MODEL);
  const installed = await fs.stat(dir).then((s) => s.isDirectory(), () => false);
  if (!installed) {
    throw new Img2PromptError(dir, `the MiniLM text model is not installed; run \`img2prompt models pull ${MINILM_MODEL}\``, { code: 'MODEL_MISSING' });
  }
  const { MiniLMEmbedder } = await import('../text/minilm.js');
  return MiniLMEmbedder.open(dir);
}

import { existsSync } from 'node:fs';
import path from 'node:path';
import { Img2PromptError } from '../util/errors.js';
import { modelDir, readInstallRecord } from '../models/cache.js';
import { sha256File } from '../models/sha256.js';
import { MINILM_MODEL } from '../submission/default-embedder.js';
import { MiniLMEmbedder } from '../text/minilm.js';
import type { ClipTextSide } from '../interrogate/types.js';

/**
 * all-MiniLM-L6-v2 seen through the `ClipTextSide` interface, so the generic embedding cache
 * (interrogate/bank-cache.ts) can store the prompt bank's MiniLM vectors exactly as it stores CLIP
 * label banks: keyed by model id and weight hash, resumable, checksummed.
 */
export class MiniLMTextSide implements ClipTextSide {
  /** Cache folder name of the MiniLM banks (`<home>/banks/minilm/`). */
  readonly modelId = MINILM_MODEL;

  private constructor(
    readonly embedder: MiniLMEmbedder,
    readonly weightHash: string,
  ) {}

  /** Opens the MiniLM model in the cache (default `modelDir('minilm')`). */
  static async open(dir: string = modelDir(MINILM_MODEL)): Promise<MiniLMTextSide> {
    if (!existsSync(dir)) {
      throw new Img2PromptError(dir, `the MiniLM text model is not installed; run \`img2prompt models pull ${MINILM_MODEL}\``, { code: 'MODEL_MISSING' });
    }
    const weightHash = await minilmWeightHash(dir);
    return new MiniLMTextSide(await MiniLMEmbedder.open(dir), weightHash);
  }

  get dim(): number {
    return this.embedder.dim;
  }

  get tokenizerId(): string {
    return this.embedder.tokenizer.identity;
  }

  /** Names the exact weights (like ClipModel.modelId): what weights files and maps record as `minilmModel`. */
  get identity(): string {
    return `${MINILM_MODEL}@${this.weightHash.slice(0, 16)}`;
  }

  encodeTexts(texts: string[], opts: { onProgress?(done: number): void } = {}): Promise<Float32Array> {
    return this.embedder.embed(texts, { onProgress: opts.onProgress && ((done) => opts.onProgress!(done)) });
  }

  /** MiniLM tokens including [CLS] and [SEP] (after its 256-token truncation). */
  countTokens(text: string): number {
    return this.embedder.tokenizer.encode(text).length;
  }

  close(): void {
    this.embedder.close();
  }
}

/**
 * sha256 of the MiniLM weights: from the install record when it lists model.safetensors (hashed when
 * it was pulled), else computed from the file.
 */
export async function minilmWeightHash(dir: string): Promise<string> {
  const record = await readInstallRecord(dir, MINILM_MODEL).catch(() => undefined);
  const listed = record?.files.find((f) => f.path === 'model.safetensors')?.sha256;
  if (listed) return listed;
  const file = path.join(dir, 'model.safetensors');
  if (!existsSync(file)) throw new Img2PromptError(file, 'MiniLM weights not found', { code: 'MODEL_MISSING' });
  return sha256File(file);
}

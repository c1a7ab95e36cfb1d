import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { installRandomClip } from '../src/models/install-local.js';
import { modelDir } from '../src/models/cache.js';
import { ClipModel } from '../src/clip/model.js';
import { MiniLMEmbedder } from '../src/text/minilm.js';
import { readPromptsCsv } from '../src/submission/prompts-csv.js';
import { asset, KAGGLE_SAMPLE, tempDir } from './helpers/paths.js';
import { restoreHome } from './helpers/tiny-clip-home.js';

/**
 * fp16 towers against fp32 ones on ONNX Runtime's CPU provider: ViT-B-32 at full size on random
 * weights (no real CLIP weights can be downloaded here) and the real all-MiniLM-L6-v2. The CPU
 * provider runs every operator of these graphs, but it has native float16 kernels only for some
 * (LayerNormalization, Conv, the data movers) and wraps the others in casts to float32, so here the
 * difference comes from half-precision weights and the half activations between those kernels;
 * float16 arithmetic in MatMul and GELU happens only on a GPU, where scripts/device-check.sh compares
 * the same embeddings with the same bound.
 */
const MIN_COSINE = 0.9995;

function rowCosines(a: Float32Array, b: Float32Array, dim: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < a.length / dim; r++) {
    let dot = 0;
    let na = 0;
    let nb = 0;
    for (let j = 0; j < dim; j++) {
      const x = a[r * dim + j]!;
      const y = b[r * dim + j]!;
      dot += x * y;
      na += x * x;
      nb += y * y;
    }
    out.push(dot / Math.sqrt(na * nb));
  }
  return out;
}

/** The first `n` lines of a label bank. */
function labelLines(file: string, n: number): string[] {
  return fs.readFileSync(asset('labels', file), 'utf8').split('\n').map((l) => l.trim()).filter(Boolean).slice(0, n);
}

const images = fs.readdirSync(path.join(KAGGLE_SAMPLE, 'images')).sort().map((f) => path.join(KAGGLE_SAMPLE, 'images', f));
const cpu = { providers: ['cpu' as const] };

describe('fp16 ViT-B-32 (random weights) against fp32 on the CPU provider', () => {
  let home: string;
  let saved: string | undefined;
  const results: Record<'fp32' | 'fp16', { images: Float32Array; texts: Float32Array }> = {} as never;
  const texts = [...labelLines('mediums.txt', 95), ...labelLines('artists.txt', 405), ...labelLines('flavors.txt', 500)];

  beforeAll(async () => {
    home = tempDir('img2prompt-b32-fp16-');
    saved = process.env.IMG2PROMPT_HOME;
    process.env.IMG2PROMPT_HOME = home;
    await installRandomClip({ arch: 'ViT-B-32', seed: 3, name: 'b32', layout: 'open_clip', tokenizerDir: asset('tokenizers', 'clip', 'hf-openai-clip-vit-large-patch14') });
    for (const precision of ['fp32', 'fp16'] as const) {
      const model = await ClipModel.open('b32', { precision, sessionOptions: cpu });
      expect(model.precision).toBe(precision);
      const encoded = await model.encodeImages(images);
      expect(encoded.failures).toEqual([]);
      results[precision] = { images: encoded.embeds, texts: await model.encodeTexts(texts) };
      model.close();
    }
  }, 900_000);

  afterAll(() => {
    restoreHome(saved);
    fs.rmSync(home, { recursive: true, force: true });
  });

  it(`image embeddings of the 7 Kaggle images: cosine ≥ ${MIN_COSINE}, and not identical`, () => {
    const cos = rowCosines(results.fp32.images, results.fp16.images, 512);
    expect(cos).toHaveLength(7);
    expect(Math.min(...cos)).toBeGreaterThanOrEqual(MIN_COSINE);
    // A graph that silently stayed float32 would give cosines of 1 to the last bit.
    expect(Math.min(...cos)).toBeLessThan(1 - 1e-9);
    expect(fs.existsSync(path.join(modelDir('b32'), 'vision.fp16.onnx'))).toBe(true);
  });

  it(`text embeddings of 1,000 label-bank lines: cosine ≥ ${MIN_COSINE}`, () => {
    const cos = rowCosines(results.fp32.texts, results.fp16.texts, 512);
    expect(cos).toHaveLength(texts.length);
    expect(Math.min(...cos)).toBeGreaterThanOrEqual(MIN_COSINE);
    expect(Math.min(...cos)).toBeLessThan(1 - 1e-9);
  });
});

describe('fp16 all-MiniLM-L6-v2 (real weights) against fp32 on the CPU provider', () => {
  it(`the 7 Kaggle prompts and 3,000 label-bank lines: cosine ≥ ${MIN_COSINE}`, { timeout: 600_000 }, async () => {
    // A copy of the weights, so the fp16 graph is built in a temp folder and not in the shared model cache.
    const work = tempDir('img2prompt-minilm-fp16-');
    const real = modelDir('minilm');
    for (const f of fs.readdirSync(real)) if (!f.endsWith('.onnx') && !f.endsWith('.onnx.json')) fs.cpSync(path.join(real, f), path.join(work, f), { recursive: true });
    const prompts = (await readPromptsCsv(path.join(KAGGLE_SAMPLE, 'prompts.csv'))).map((r) => r.prompt);
    const texts = [...prompts, ...labelLines('flavors.txt', 2000), ...labelLines('artists.txt', 1000)];
    const out: Partial<Record<'fp32' | 'fp16', Float32Array>> = {};
    for (const precision of ['fp32', 'fp16'] as const) {
      const embedder = await MiniLMEmbedder.open(work, cpu, precision);
      expect(embedder.precision).toBe(precision);
      out[precision] = await embedder.embed(texts);
      embedder.close();
    }
    const cos = rowCosines(out.fp32!, out.fp16!, 384);
    expect(cos).toHaveLength(3007);
    expect(Math.min(...cos.slice(0, 7))).toBeGreaterThanOrEqual(MIN_COSINE);
    expect(Math.min(...cos)).toBeGreaterThanOrEqual(MIN_COSINE);
    expect(Math.min(...cos)).toBeLessThan(1 - 1e-9);
    fs.rmSync(work, { recursive: true, force: true });
  });
});

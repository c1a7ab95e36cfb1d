import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Captioner } from '../src/caption/captioner.js';
import { captionArchitectureConfig } from '../src/caption/architectures.js';
import { writeRandomCaptionCheckpoint } from '../src/caption/random-checkpoint.js';
import { captionGraphNames } from '../src/caption/onnx-cache.js';
import { loadBatches } from '../src/image/batch-loader.js';
import { asset, KAGGLE_SAMPLE, tempDir } from './helpers/paths.js';

/**
 * fp16 captioner graphs against fp32 ones on ONNX Runtime's CPU provider (which runs the half graphs
 * by wrapping most kernels in casts; the half arithmetic itself happens on a GPU). The decoder is
 * teacher-forced with the fp32 greedy tokens for three steps, so both precisions see the same
 * sequences, and every next-token logits row must keep a cosine ≥ 0.9995 to fp32's — the bound the
 * CLIP and MiniLM towers are held to (test/precision-parity.test.ts).
 */
const MIN_COSINE = 0.9995;
const STEPS = 3;

function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return dot / Math.sqrt(na * nb);
}

const files = fs.readdirSync(path.join(KAGGLE_SAMPLE, 'images')).sort().map((f) => path.join(KAGGLE_SAMPLE, 'images', f));
const root = tempDir('img2prompt-caption-fp16-');
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe.each(['blip-tiny', 'git-tiny'])('fp16 %s captioner against fp32 on the CPU provider', (arch) => {
  it('builds half graphs beside the fp32 ones, and its logits keep cosine ≥ 0.9995 for three teacher-forced steps', async () => {
    const dir = path.join(root, arch);
    await writeRandomCaptionCheckpoint(dir, captionArchitectureConfig(arch), 7, asset('tokenizers', 'minilm'));
    const cpu = { providers: ['cpu' as const] };
    await using fp32 = await Captioner.open(dir, { sessionOptions: cpu, precision: 'fp32' });
    await using fp16 = await Captioner.open(dir, { sessionOptions: cpu, precision: 'fp16' });
    expect(fp16.files.precision).toBe('fp16');
    expect(path.basename(fp16.files.decoder)).toBe(captionGraphNames('fp16').decoder);
    // Half weights: the fp16 graphs are a little over half the bytes of the fp32 ones.
    for (const part of ['image', 'decoder'] as const) {
      const ratio = fs.statSync(fp16.files[part]).size / fs.statSync(fp32.files[part]).size;
      expect(ratio, part).toBeGreaterThan(0.45);
      expect(ratio, part).toBeLessThan(0.6);
    }
    const image = fp32.config.image;
    let pixels = new Float32Array(0);
    for await (const batch of loadBatches(files, { batchSize: files.length, size: image.size, mean: image.mean, std: image.std, processor: image.processor })) pixels = batch.pixels.slice();
    const count = files.length;
    const V = fp32.config.text.vocabSize;
    const images = Array.from({ length: count }, (_, i) => i);
    const decoders = [fp32, fp16].map(async (c) => c.decoderFor(await c.encodePixels(pixels, count)));
    const [d32, d16] = await Promise.all(decoders);
    let input = BigInt64Array.from({ length: count }, () => BigInt(fp32.tokenizer.prompt('')[0]!));
    let past32: unknown;
    let past16: unknown;
    let worst = 1;
    for (let step = 0; step < STEPS; step++) {
      const a = await d32!.step(input, count, 1, images, past32);
      const b = await d16!.step(input, count, 1, images, past16);
      past32 = a.past;
      past16 = b.past;
      const next: bigint[] = [];
      for (let r = 0; r < count; r++) {
        const rowA = a.logits.subarray(r * V, (r + 1) * V);
        worst = Math.min(worst, cosine(rowA, b.logits.subarray(r * V, (r + 1) * V)));
        let best = 0;
        for (let v = 1; v < V; v++) if (rowA[v]! > rowA[best]!) best = v;
        next.push(BigInt(best));
      }
      input = BigInt64Array.from(next);
    }
    console.log(`${arch}: lowest logits cosine fp16 vs fp32 over ${STEPS} steps × ${count} images: ${worst.toFixed(7)}`);
    expect(worst).toBeGreaterThanOrEqual(MIN_COSINE);
  }, 300_000);
});

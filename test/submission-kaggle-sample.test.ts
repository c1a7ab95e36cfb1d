// End to end on Kaggle's own sample with the real all-MiniLM-L6-v2: the true prompts must reproduce
// sample_submission.csv (score 1), and embed -> submission -> validate -> score must round-trip.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modelDir, modelHome } from '../src/models/cache.js';
import { runCliInProcess } from './helpers/cli.js';
import type { TextEmbedder } from '../src/text/embedder.js';
import { score } from '../src/submission/score.js';
import { readPromptsCsv } from '../src/submission/prompts-csv.js';
import { embedPrompts } from '../src/submission/embed-prompts.js';
import { EMBEDDING_DIM, readSubmission, writeSubmission } from '../src/submission/submission-csv.js';
import { imageIdsInDir, validateSubmission } from '../src/submission/validate.js';
import { KAGGLE_SAMPLE, tempDir } from './helpers/paths.js';
import { listDir } from './helpers/submission-fakes.js';

const PROMPTS = path.join(KAGGLE_SAMPLE, 'prompts.csv');
const SAMPLE_SUB = path.join(KAGGLE_SAMPLE, 'sample_submission.csv');
const IMAGES = path.join(KAGGLE_SAMPLE, 'images');

function whyUnavailable(): string | undefined {
  if (!fs.existsSync(path.resolve('src/text/minilm.ts'))) return 'src/text/minilm.ts (MiniLMEmbedder) does not exist yet';
  if (!fs.existsSync(modelDir('minilm'))) return `MiniLM is not installed at ${modelDir('minilm')}: run \`img2prompt models pull minilm\``;
  return undefined;
}
const skipReason = whyUnavailable();

let embedder: TextEmbedder | undefined;
let dir: string;
beforeAll(async () => {
  dir = tempDir('img2prompt-kaggle-');
  if (skipReason) return;
  const { MiniLMEmbedder } = await import('../src/text/minilm.js');
  embedder = await MiniLMEmbedder.open(modelDir('minilm'));
});
afterAll(() => {
  embedder?.close?.();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function runCli(args: string[]): Promise<{ out: string; exitCode: number | null }> {
  const r = await runCliInProcess(args, modelHome());
  return { out: r.stdout, exitCode: r.code };
}

describe('Kaggle sample with the real MiniLM embedder', () => {
  it('scores the true prompts against sample_submission.csv as 1.0000', async (ctx) => {
    if (skipReason) ctx.skip(skipReason);
    const result = await score(PROMPTS, SAMPLE_SUB, embedder!);
    expect(result.images).toHaveLength(7);
    expect(result.missing).toEqual([]);
    expect(result.extra).toEqual([]);
    for (const r of result.images) expect(r.cosine, r.imgId).toBeGreaterThanOrEqual(0.99999);
    expect(result.mean).toBeGreaterThanOrEqual(0.99999);
    expect(result.mean.toFixed(4)).toBe('1.0000');
  });

  it('embed -> writeSubmission -> validate -> readSubmission round-trips', async (ctx) => {
    if (skipReason) ctx.skip(skipReason);
    const rows = await readPromptsCsv(PROMPTS);
    const vectors = await embedPrompts(rows, embedder!, { batchSize: 3 });
    const out = path.join(dir, 'roundtrip.csv');
    await writeSubmission(out, rows.map((r) => r.imgId), vectors);

    const report = await validateSubmission(out, { imageIds: await imageIdsInDir(IMAGES) });
    expect(report).toEqual({ valid: true, problems: [], problemCount: 0, warnings: [], images: 7, rows: 7 * EMBEDDING_DIM });

    const back = await readSubmission(out);
    expect(back.ids).toEqual(rows.map((r) => r.imgId));
    expect(back.vectors).toEqual(vectors); // bit-identical float32

    // Value by value against Kaggle's golden vectors (same ids, same order).
    const golden = await readSubmission(SAMPLE_SUB);
    expect(golden.ids).toEqual(back.ids);
    let worst = 0;
    for (let i = 0; i < golden.vectors.length; i++) worst = Math.max(worst, Math.abs(golden.vectors[i] - back.vectors[i]));
    expect(worst).toBeLessThan(1e-5); // measured 1.4e-7 on CPU
  });

  it('CLI: embed, validate --images and score agree', async (ctx) => {
    if (skipReason) ctx.skip(skipReason);
    const out = path.join(dir, 'cli.csv');
    expect((await runCli(['embed', '--prompts', PROMPTS, '-o', out, '--batch-size', '4'])).exitCode).toBe(0);
    expect(listDir(dir).filter((f) => f.startsWith('.'))).toEqual([]); // no temp files left

    const validated = await runCli(['validate', out, '--images', IMAGES]);
    expect(validated.exitCode).toBe(0);
    expect(validated.out).toBe(`${out}: valid submission (7 images, 2688 rows)\n`);

    const scored = await runCli(['score', '--pred', out, '--truth', SAMPLE_SUB]);
    expect(scored.out.trimEnd().split('\n').at(-1)).toBe('mean cosine: 1.0000 over 7 images');
    const fromPrompts = await runCli(['score', '--pred', PROMPTS, '--truth', out, '--json']);
    expect(JSON.parse(fromPrompts.out).mean).toBeGreaterThanOrEqual(0.99999);
  });
});

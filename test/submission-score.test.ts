import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { detectCsvKind, score, type ScoreResult } from '../src/submission/score.js';
import { writePromptsCsv } from '../src/submission/prompts-csv.js';
import { EMBEDDING_DIM, writeSubmission } from '../src/submission/submission-csv.js';
import { formatScore } from '../src/cli/commands/score.js';
import { KAGGLE_SAMPLE, tempDir } from './helpers/paths.js';
import { BagOfWordsEmbedder, expectBadInput } from './helpers/submission-fakes.js';

let dir: string;
beforeEach(() => {
  dir = tempDir('img2prompt-score-');
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const SAMPLE_SUB = path.join(KAGGLE_SAMPLE, 'sample_submission.csv');
const SAMPLE_PROMPTS = path.join(KAGGLE_SAMPLE, 'prompts.csv');
const fourWords = (): BagOfWordsEmbedder => new BagOfWordsEmbedder({ cat: 0, dog: 1, red: 2, blue: 3 }, 4);

async function prompts(name: string, rows: Record<string, string>): Promise<string> {
  const file = path.join(dir, name);
  await writePromptsCsv(file, Object.entries(rows).map(([imgId, prompt]) => ({ imgId, prompt })));
  return file;
}

/** A submission whose vector for each id is given sparsely as {slot: value}. */
async function submission(name: string, vectors: Record<string, Record<number, number>>): Promise<string> {
  const file = path.join(dir, name);
  const ids = Object.keys(vectors);
  const data = new Float32Array(ids.length * EMBEDDING_DIM);
  ids.forEach((id, i) => {
    for (const [slot, v] of Object.entries(vectors[id])) data[i * EMBEDDING_DIM + Number(slot)] = v;
  });
  await writeSubmission(file, ids, data);
  return file;
}

describe('score', () => {
  it('prompts vs prompts: mean cosine over the truth, missing ids scored 0, extra ids reported', async () => {
    const truth = await prompts('truth.csv', { a: 'red cat', b: 'blue dog', c: 'cat' });
    const pred = await prompts('pred.csv', { x: 'cat', b: 'blue dog', a: 'red dog' });
    const result = await score(pred, truth, fourWords());
    // a: (red+cat)·(red+dog) / (√2·√2) = 1/2; b: identical = 1; c: missing = 0.
    expect(result.images).toEqual([
      { imgId: 'a', cosine: expect.closeTo(0.5, 7), missing: false },
      { imgId: 'b', cosine: expect.closeTo(1, 7), missing: false },
      { imgId: 'c', cosine: 0, missing: true },
    ]);
    expect(result.mean).toBeCloseTo(0.5, 7);
    expect(result.missing).toEqual(['c']);
    expect(result.extra).toEqual(['x']);
    expect(result.predKind).toBe('prompts');
    expect(result.truthKind).toBe('prompts');
  });

  it('submission vs submission: true cosines (not dot products), zero vectors score 0, no embedder needed', async () => {
    const truth = await submission('truth.csv', { a: { 0: 1 }, b: { 0: Math.SQRT1_2, 1: Math.SQRT1_2 }, z: { 5: 1 } });
    const pred = await submission('pred.csv', { a: { 0: 2, 1: 2 }, b: { 1: 3 }, z: {} });
    const factory = vi.fn();
    const result = await score(pred, truth, factory);
    expect(factory).not.toHaveBeenCalled();
    expect(result.images.map((r) => r.cosine)).toEqual([
      expect.closeTo(Math.SQRT1_2, 6), // (2,2)·(1,0) / (2√2 · 1)
      expect.closeTo(Math.SQRT1_2, 6), // (0,3)·(1,1)/√2 / 3
      0,
    ]);
    expect(result.mean).toBeCloseTo((2 * Math.SQRT1_2) / 3, 6);
    expect(result.missing).toEqual([]);
  });

  it('prompts vs submission: embeds only the prompts side, opening a lazily given embedder once and closing it', async () => {
    const embedder = new BagOfWordsEmbedder({ cat: 0, dog: 1, red: 200 }, EMBEDDING_DIM);
    const close = vi.fn();
    const factory = vi.fn(async () => Object.assign(embedder, { close }));
    const truth = await submission('truth.csv', { a: { 0: 1 }, b: { 200: 1 } });
    const pred = await prompts('pred.csv', { a: 'cat dog', b: 'red' });
    const result = await score(pred, truth, factory, { batchSize: 7 });
    expect(result.images.map((r) => r.cosine)).toEqual([expect.closeTo(Math.SQRT1_2, 6), expect.closeTo(1, 6)]);
    expect(factory).toHaveBeenCalledTimes(1);
    expect(close).toHaveBeenCalledTimes(1);
    expect(embedder.calls).toEqual([{ texts: ['cat dog', 'red'], batchSize: 7 }]);
  });

  it("Kaggle's sample submission scores 1 against itself", async () => {
    const result = await score(SAMPLE_SUB, SAMPLE_SUB);
    expect(result.images).toHaveLength(7);
    for (const r of result.images) expect(r.cosine).toBeCloseTo(1, 6);
  });

  it('refuses vectors of different dimension', async () => {
    const truth = await submission('truth.csv', { a: { 0: 1 } });
    const pred = await prompts('pred.csv', { a: 'cat' });
    await expectBadInput(score(pred, truth, fourWords()), pred, /vectors have dimension 4 but the truth .* has 384/);
  });

  it('needs an embedder for prompts', async () => {
    const p = await prompts('p.csv', { a: 'cat' });
    await expect(score(p, p)).rejects.toThrow('scoring a prompts CSV needs a text embedder');
  });

  it('names the file on bad input, before any embedding', async () => {
    const embedder = fourWords();
    const truth = await prompts('truth.csv', { a: 'cat' });
    const badPred = path.join(dir, 'bad.csv');
    fs.writeFileSync(badPred, 'imgId,prompt\na,cat\na,dog\n');
    await expectBadInput(score(badPred, truth, embedder), badPred, /^line 3: duplicate imgId "a"/);
    const unknown = path.join(dir, 'unknown.csv');
    fs.writeFileSync(unknown, 'id,text\n1,cat\n');
    await expectBadInput(score(unknown, truth, embedder), unknown, /^line 1: unrecognised header "id,text"/);
    const empty = path.join(dir, 'empty.csv');
    fs.writeFileSync(empty, '\n');
    await expectBadInput(score(truth, empty, embedder), empty, /^empty file/);
    const missing = path.join(dir, 'missing.csv');
    await expectBadInput(score(truth, missing, embedder), missing, /^cannot read: no such file/);
    expect(embedder.calls).toEqual([]);
  });
});

describe('detectCsvKind', () => {
  it('tells prompts CSVs from submissions by the header', async () => {
    expect(await detectCsvKind(SAMPLE_PROMPTS)).toBe('prompts');
    expect(await detectCsvKind(SAMPLE_SUB)).toBe('submission');
    const quoted = path.join(dir, 'q.csv');
    fs.writeFileSync(quoted, '\ufeff"prompt","imgId"\r\n"a cat",a\r\n');
    expect(await detectCsvKind(quoted)).toBe('prompts');
  });
});

describe('formatScore', () => {
  it('prints a per-image table, missing and extra ids, and the mean to 4 decimals', () => {
    const result: ScoreResult = {
      mean: 0.61728,
      images: [
        { imgId: '20057f34d', cosine: 0.923456, missing: false },
        { imgId: 'b', cosine: 0.928384, missing: false },
        { imgId: 'c', cosine: 0, missing: true },
      ],
      missing: ['c'],
      extra: ['x'],
      predKind: 'prompts',
      truthKind: 'submission',
    };
    expect(formatScore(result)).toBe(
      [
        'imgId       cosine',
        '20057f34d   0.9235',
        'b           0.9284',
        'c           0.0000  (missing: scored 0)',
        'missing from the prediction (scored 0): 1',
        '  c',
        'in the prediction but not in the truth (ignored): 1',
        '  x',
        'mean cosine: 0.6173 over 3 images',
        '',
      ].join('\n'),
    );
  });
});

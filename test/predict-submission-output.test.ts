// predict's submission writer validates the written temp file before renaming it into place: an
// invalid submission never appears at the target, and no temp file is left behind.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeValidatedSubmission } from '../src/predict/submission-output.js';
import { readSubmission } from '../src/submission/submission-csv.js';
import { randomUnitRows } from './helpers/predict-fakes.js';
import { tempDir } from './helpers/paths.js';

const DIM = 384;
const IDS = ['img0', 'img1', 'img2'];

let dir: string;
let target: string;
beforeEach(() => {
  dir = tempDir('img2prompt-submission-output-');
  target = path.join(dir, 'submission.csv');
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function withRow(vectors: Float32Array, r: number, fill: (i: number) => number): Float32Array {
  const out = new Float32Array(vectors);
  for (let i = 0; i < DIM; i++) out[r * DIM + i] = fill(i);
  return out;
}

describe('writeValidatedSubmission', () => {
  it('writes a submission that reads back bit-exactly', async () => {
    const vectors = randomUnitRows(3, DIM, 5);
    await writeValidatedSubmission(target, IDS, vectors);
    expect(fs.readdirSync(dir)).toEqual(['submission.csv']);
    const back = await readSubmission(target);
    expect(back.ids).toEqual(IDS);
    expect(Buffer.from(back.vectors.buffer).equals(Buffer.from(vectors.buffer))).toBe(true);
  });

  it.each([
    ['a NaN value', withRow(randomUnitRows(3, DIM, 1), 1, (i) => (i === 7 ? NaN : 0.05)), /img1_7 is not finite/],
    ['an all-zero vector', withRow(randomUnitRows(3, DIM, 2), 2, () => 0), /refusing to write an invalid submission: image "img2": vector is all zeros/],
    ['a vector of norm 2', withRow(randomUnitRows(3, DIM, 3), 0, () => 2 / Math.sqrt(DIM)), /refusing to write an invalid submission: image "img0": L2 norm 2\.0000\d+ is not 1/],
  ])('refuses %s: the target does not appear and no temp file is left', async (_what, vectors, message) => {
    await expect(writeValidatedSubmission(target, IDS, vectors)).rejects.toThrow(message);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('refuses ids that are not the expected set and leaves an existing submission as it was', async () => {
    const before = 'an earlier submission\n';
    fs.writeFileSync(target, before);
    const vectors = randomUnitRows(3, DIM, 4);
    await expect(writeValidatedSubmission(target, IDS, vectors, ['img0', 'img1', 'img3'])).rejects.toThrow(
      `${target}: refusing to write an invalid submission: missing image "img3"; unexpected image "img2" (not in the expected ids)`,
    );
    await expect(writeValidatedSubmission(target, IDS, vectors, ['img0', 'img1'])).rejects.toThrow(/unexpected image "img2"/);
    expect(fs.readdirSync(dir)).toEqual(['submission.csv']);
    expect(fs.readFileSync(target, 'utf8')).toBe(before);
  });
});

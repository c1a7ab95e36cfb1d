// checkSubmissionInOrder: the constant-memory read-back of a run's own submission before it is published.
// Each case starts from a file writeSubmission wrote and breaks one thing in it; the streamed writer
// (ValidatedSubmissionStream) must refuse a bad vector through it and publish nothing.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { checkSubmissionInOrder } from '../src/submission/ordered-check.js';
import { writeSubmission } from '../src/submission/submission-csv.js';
import { ValidatedSubmissionStream } from '../src/predict/submission-output.js';
import { randomUnitRows } from './helpers/predict-fakes.js';
import { tempDir } from './helpers/paths.js';

const DIM = 384;
const IDS = ['a1', 'b2', 'c3'];

let dir: string;
let file: string;
beforeEach(async () => {
  dir = tempDir('img2prompt-ordered-check-');
  file = path.join(dir, 'submission.csv');
  await writeSubmission(file, IDS, randomUnitRows(IDS.length, DIM, 7));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

/** The file's lines (header first), changed by `edit`, written back. */
function editLines(edit: (lines: string[]) => void): void {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  lines.pop(); // the empty string after the final newline
  edit(lines);
  fs.writeFileSync(file, lines.join('\n') + '\n');
}

describe('checkSubmissionInOrder', () => {
  it('passes the file writeSubmission wrote, given the same ids in the same order', async () => {
    expect(await checkSubmissionInOrder(file, IDS)).toEqual({ problems: [], count: 0 });
  });

  it('refuses the same file against another order or another id', async () => {
    expect((await checkSubmissionInOrder(file, ['b2', 'a1', 'c3'])).problems).toEqual(['line 2: expected row b2_0, got "a1_0,' + fs.readFileSync(file, 'utf8').split('\n')[1]!.split(',')[1] + '"']);
    expect((await checkSubmissionInOrder(file, ['a1', 'b2', 'c4'])).problems[0]).toBe(`line ${2 + 2 * DIM}: expected row c4_0, got ${JSON.stringify(fs.readFileSync(file, 'utf8').split('\n')[1 + 2 * DIM])}`);
  });

  it.each<[string, (lines: string[]) => void, string]>([
    ['a bad header', (l) => (l[0] = 'id,val'), 'line 1: bad header "id,val": expected "imgId_eId,val"'],
    ['two rows swapped', (l) => ([l[10], l[11]] = [l[11]!, l[10]!]), 'line 11: expected row a1_9, got "a1_10,'],
    ['a value that is not a number', (l) => (l[5] = 'a1_4,nan'), 'line 6: value "nan" of a1_4 is not a finite float32'],
    ['a value out of float32 range', (l) => (l[5] = 'a1_4,1e39'), 'line 6: value "1e39" of a1_4 is not a finite float32'],
    ['a vector of norm 2', (l) => { for (let e = 0; e < DIM; e++) l[1 + DIM + e] = `b2_${e},${2 / Math.sqrt(DIM)}`; }, `line ${1 + 2 * DIM}: image "b2": L2 norm 2.000000 is not 1`],
    ['an all-zero vector', (l) => { for (let e = 0; e < DIM; e++) l[1 + e] = `a1_${e},0`; }, `line ${1 + DIM}: image "a1": vector is all zeros (cosine undefined)`],
    ['a truncated last image', (l) => l.splice(l.length - 10), 'image "c3" has 374 of 384 rows (the file ends there)'],
    ['a missing last image', (l) => l.splice(1 + 2 * DIM), 'missing image "c3" (2 of 3 images are in the file)'],
    ['a row after the last image', (l) => l.push('d4_0,0.5'), `line ${2 + 3 * DIM}: a row after the last image: "d4_0,0.5"`],
    ['a header and no rows', (l) => l.splice(1), 'missing image "a1" (0 of 3 images are in the file)'],
  ])('refuses %s, naming the line and the reason', async (_what, edit, expected) => {
    editLines(edit);
    const { problems, count } = await checkSubmissionInOrder(file, IDS);
    expect(count).toBeGreaterThan(0);
    expect(problems[0]!.slice(0, expected.length)).toBe(expected);
  });

  it('refuses an empty file', async () => {
    fs.writeFileSync(file, '');
    expect((await checkSubmissionInOrder(file, IDS)).problems).toEqual(['empty file: expected a header line "imgId_eId,val" and 384 rows per image']);
  });
});

describe('ValidatedSubmissionStream (read back in order before it is published)', () => {
  it('writes the bytes writeSubmission writes', async () => {
    const vectors = randomUnitRows(IDS.length, DIM, 7);
    const target = path.join(dir, 'streamed.csv');
    const stream = await ValidatedSubmissionStream.create(target, IDS);
    for (let i = 0; i < IDS.length; i++) await stream.add(IDS[i]!, vectors.subarray(i * DIM, (i + 1) * DIM));
    await stream.finish();
    expect(fs.readFileSync(target).equals(fs.readFileSync(file))).toBe(true);
  });

  it('refuses a vector of norm 2 and leaves no file behind', async () => {
    const vectors = randomUnitRows(IDS.length, DIM, 7);
    for (let e = 0; e < DIM; e++) vectors[DIM + e] = 2 / Math.sqrt(DIM);
    const target = path.join(dir, 'streamed.csv');
    const stream = await ValidatedSubmissionStream.create(target, IDS);
    for (let i = 0; i < IDS.length; i++) await stream.add(IDS[i]!, vectors.subarray(i * DIM, (i + 1) * DIM));
    await expect(stream.finish()).rejects.toThrow(`${target}: refusing to write an invalid submission: line ${1 + 2 * DIM}: image "b2": L2 norm 2.000000 is not 1`);
    expect(fs.readdirSync(dir)).toEqual(['submission.csv']);
  });
});

import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EMBEDDING_DIM } from '../src/submission/submission-csv.js';
import { MAX_KEPT_PROBLEMS, imageIdsInDir, readIdsFile, validateSubmission } from '../src/submission/validate.js';
import { modelHome } from '../src/models/cache.js';
import { runCliInProcess } from './helpers/cli.js';
import { KAGGLE_SAMPLE, tempDir } from './helpers/paths.js';
import { expectBadInput, replaceAt, spliceCopy } from './helpers/submission-fakes.js';

let dir: string;
beforeEach(() => {
  dir = tempDir('img2prompt-validate-');
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

const HEADER = 'imgId_eId,val';

const SAMPLE = path.join(KAGGLE_SAMPLE, 'sample_submission.csv');
const UNIT = 1 / Math.sqrt(EMBEDDING_DIM);

/** One image's rows in eId order, each value `value(e)` (a unit vector by default). */
function imageRows(id: string, value: (e: number) => number = () => UNIT, eIds?: number[]): string[] {
  return (eIds ?? Array.from({ length: EMBEDDING_DIM }, (_, e) => e)).map((e) => `${id}_${e},${value(e)}`);
}

function subFile(lines: string[], name = 'sub.csv'): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

describe('validateSubmission', () => {
  it("accepts Kaggle's sample submission against its image folder", async () => {
    const report = await validateSubmission(SAMPLE, { imageIds: await imageIdsInDir(path.join(KAGGLE_SAMPLE, 'images')) });
    expect(report).toEqual({ valid: true, problems: [], problemCount: 0, warnings: [], images: 7, rows: 7 * EMBEDDING_DIM });
  });

  it('reports every problem in one pass, not just the first', async () => {
    const textSorted = Array.from({ length: EMBEDDING_DIM }, (_, e) => e).sort((a, b) => String(a).localeCompare(String(b)));
    const file = subFile([
      HEADER,
      ...imageRows('ok'),
      ...replaceAt(imageRows('badval'), 5, 'badval_5,oops'),
      ...imageRows('short').slice(0, 381),
      ...spliceCopy(imageRows('dup'), 10, 0, 'dup_9,0.1'),
      ...imageRows('sorted', undefined, textSorted),
    ]);
    const report = await validateSubmission(file);
    expect(report.valid).toBe(false);
    expect(report.images).toBe(5);
    expect(report.rows).toBe(384 + 384 + 381 + 385 + 384);
    expect(report.problems).toEqual([
      'line 391: value "oops" of badval_5 is not a finite number',
      'line 1161: duplicate row dup_9',
      // Sorted as text: 0, 1, 10, 100, ..., 109, 11, ... — one report for the whole image.
      `line ${1536 + textSorted.indexOf(11)}: rows of image "sorted" are out of order: sorted_11 comes after sorted_109`,
      'line 769: image "badval" (from line 386) has 383 of 384 rows; missing eId 5',
      'line 1150: image "short" (from line 770) has 381 of 384 rows; missing eId 381, 382, 383',
    ]);
    expect(report.problemCount).toBe(5);
  });

  it('treats a zero vector as a problem but a non-unit norm only as a warning', async () => {
    const file = subFile([HEADER, ...imageRows('zero', () => 0), ...imageRows('long', () => 2 * UNIT), ...imageRows('unit')]);
    const report = await validateSubmission(file);
    expect(report.problems).toEqual(['image "zero": vector is all zeros (cosine undefined)']);
    expect(report.warnings).toEqual(['image "long": L2 norm 2.000000 is not 1']);
    const onlyLong = await validateSubmission(subFile([HEADER, ...imageRows('long', () => 2 * UNIT)], 'long.csv'));
    expect(onlyLong.valid).toBe(true);
    expect(onlyLong.warnings).toHaveLength(1);
  });

  it('reports missing and unexpected images against the expected ids', async () => {
    const file = subFile([HEADER, ...imageRows('a'), ...imageRows('b'), ...imageRows('x')]);
    const report = await validateSubmission(file, { imageIds: ['a', 'b', 'c'] });
    expect(report.problems).toEqual(['missing image "c"', 'unexpected image "x" (not in the expected ids)']);
  });

  it('reports a split image once, and still counts its rows as complete', async () => {
    const a = imageRows('a');
    const file = subFile([HEADER, ...a.slice(0, 100), ...imageRows('b'), ...a.slice(100)]);
    const report = await validateSubmission(file);
    expect(report.problems).toEqual(['line 486: rows of image "a" are not contiguous: its block ended on line 101 and it appears again here']);
  });

  it('reports unreadable files as problems instead of throwing', async () => {
    const empty = subFile([''], 'empty.csv');
    expect((await validateSubmission(empty)).problems).toEqual([
      'empty file: expected a header line "imgId_eId,val" and 384 rows per image',
    ]);
    const latin1 = path.join(dir, 'latin1.csv');
    fs.writeFileSync(latin1, Buffer.from(`${HEADER}\nab\xe9_0,0.1\n`, 'latin1'));
    expect((await validateSubmission(latin1)).problems).toEqual(['line 2: invalid UTF-8 (save the file as UTF-8)']);
    expect((await validateSubmission(path.join(dir, 'none.csv'))).problems).toEqual(['cannot read: no such file']);
    expect((await validateSubmission(subFile(['imgId,prompt', 'a,a cat'], 'p.csv'))).problems[0]).toMatch(/^line 1: bad header/);
  });

  it(`keeps the first ${MAX_KEPT_PROBLEMS} problems and counts the rest`, async () => {
    const file = subFile([HEADER, ...Array.from({ length: 1500 }, (_, i) => `row${i}`)]);
    const report = await validateSubmission(file);
    expect(report.problemCount).toBe(1500);
    expect(report.problems).toHaveLength(MAX_KEPT_PROBLEMS);
    expect(report.problems[0]).toBe('line 2: expected 2 fields "<imgId>_<eId>,<value>", got 1');
  });
});

describe('expected ids', () => {
  it('takes image file names without extension, ignoring other and hidden files', async () => {
    for (const name of ['b.PNG', 'a.jpg', 'c.webp', 'notes.txt', '.hidden.png', 'd.jpeg']) fs.writeFileSync(path.join(dir, name), '');
    fs.mkdirSync(path.join(dir, 'sub.png'));
    expect(await imageIdsInDir(dir)).toEqual(['a', 'b', 'c', 'd']);
  });

  it('rejects two images with one id, an empty folder and a file', async () => {
    fs.writeFileSync(path.join(dir, 'a.png'), '');
    fs.writeFileSync(path.join(dir, 'a.jpg'), '');
    // The wording every command uses (submissionImageIds), with every clash listed.
    await expect(imageIdsInDir(dir)).rejects.toThrow(`${JSON.stringify(path.join(dir, 'a.jpg'))} and ${JSON.stringify(path.join(dir, 'a.png'))} share the id "a"`);
    const empty = path.join(dir, 'empty');
    fs.mkdirSync(empty);
    await expectBadInput(imageIdsInDir(empty), empty, /^no image files/);
    const notDir = path.join(dir, 'a.png');
    await expectBadInput(imageIdsInDir(notDir), notDir, /^cannot list images: not a directory/);
  });

  it('reads an ids file, trimming and skipping blank lines', async () => {
    const file = path.join(dir, 'ids.txt');
    fs.writeFileSync(file, 'a\r\n  b  \n\nc');
    expect(await readIdsFile(file)).toEqual(['a', 'b', 'c']);
  });

  it('rejects duplicate, invalid and absent ids', async () => {
    const file = path.join(dir, 'ids.txt');
    fs.writeFileSync(file, 'a\nb\na\n');
    await expectBadInput(readIdsFile(file), file, /^line 3: duplicate id "a" \(first on line 1\)/);
    fs.writeFileSync(file, 'a\nb c\n');
    await expectBadInput(readIdsFile(file), file, /^line 2: invalid imgId "b c"/);
    fs.writeFileSync(file, '\n\n');
    await expectBadInput(readIdsFile(file), file, /^no ids/);
  });
});

describe('validate command', () => {
  async function runCli(args: string[]): Promise<{ out: string; err: string; exitCode: number | null }> {
    const r = await runCliInProcess(['validate', ...args], modelHome());
    return { out: r.stdout, err: r.stderr, exitCode: r.code };
  }

  it('exits 0 on a valid submission', async () => {
    const { out, exitCode } = await runCli([SAMPLE, '--images', path.join(KAGGLE_SAMPLE, 'images')]);
    expect(exitCode).toBe(0);
    expect(out).toBe(`${SAMPLE}: valid submission (7 images, 2688 rows)\n`);
  });

  it('exits 1 listing the first 20 problems and how many more', async () => {
    const file = subFile([HEADER, ...Array.from({ length: 25 }, (_, i) => `r${i}_0,x`)]);
    const ids = path.join(dir, 'ids.txt');
    fs.writeFileSync(ids, 'r0\n');
    const { out, exitCode } = await runCli([file, '--ids', ids]);
    expect(exitCode).toBe(1);
    const lines = out.trimEnd().split('\n');
    expect(lines[0]).toBe(`${file}: INVALID submission, 26 problems (0 images, 25 rows)`);
    expect(lines[1]).toBe('  line 2: value "x" of r0_0 is not a finite number');
    expect(lines).toHaveLength(1 + 20 + 1);
    expect(lines[21]).toBe('  ... and 6 more');
  });

  it('prints JSON with --json', async () => {
    const { out, exitCode } = await runCli([SAMPLE, '--json']);
    expect(exitCode).toBe(0);
    expect(JSON.parse(out)).toMatchObject({ file: SAMPLE, valid: true, images: 7, rows: 2688, problems: [] });
  });

  it('refuses --images together with --ids', async () => {
    expect(await runCli([SAMPLE, '--images', dir, '--ids', 'x'])).toMatchObject({ exitCode: 1, out: '', err: 'img2prompt: give either --images or --ids, not both\n' });
  });
});

import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EMBEDDING_DIM, formatValue, readSubmission, writeSubmission } from '../src/submission/submission-csv.js';
import { KAGGLE_SAMPLE, tempDir } from './helpers/paths.js';
import { expectBadInput, listDir, replaceAt, spliceCopy } from './helpers/submission-fakes.js';

let dir: string;
beforeEach(() => {
  dir = tempDir('img2prompt-submission-');
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const HEADER = 'imgId_eId,val';

/** Rows `<id>_0 .. <id>_383` with value `e / 1000` unless overridden. */
function imageRows(id: string, eIds: number[] = Array.from({ length: EMBEDDING_DIM }, (_, e) => e)): string[] {
  return eIds.map((e) => `${id}_${e},${e / 1000}`);
}

function subFile(lines: string[], name = 'sub.csv', eol = '\n'): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, lines.join(eol) + eol);
  return file;
}

describe('readSubmission', () => {
  it("reads Kaggle's sample submission: 7 unit vectors in file order", async () => {
    const { ids, vectors } = await readSubmission(path.join(KAGGLE_SAMPLE, 'sample_submission.csv'));
    expect(ids).toEqual(['20057f34d', '227ef0887', '92e911621', 'a4e1c55a9', 'c98f79f71', 'd8edf2e40', 'f27825b2c']);
    expect(vectors).toHaveLength(7 * EMBEDDING_DIM);
    expect(vectors[0]).toBe(Math.fround(0.018848453));
    expect(vectors[1]).toBe(Math.fround(0.030189732));
    for (let i = 0; i < 7; i++) {
      const norm = Math.hypot(...vectors.subarray(i * EMBEDDING_DIM, (i + 1) * EMBEDDING_DIM));
      expect(norm).toBeCloseTo(1, 5);
    }
  });

  it('accepts a BOM, CRLF and a trailing blank line', async () => {
    const file = path.join(dir, 'crlf.csv');
    fs.writeFileSync(file, '\ufeff' + [HEADER, ...imageRows('a')].join('\r\n') + '\r\n\r\n');
    const { ids, vectors } = await readSubmission(file);
    expect(ids).toEqual(['a']);
    expect(vectors[383]).toBe(Math.fround(0.383));
  });

  it('splits keys at the last underscore, so ids may contain underscores', async () => {
    const file = subFile([HEADER, ...imageRows('img_01_x')]);
    expect((await readSubmission(file)).ids).toEqual(['img_01_x']);
  });
});

describe('writeSubmission', () => {
  it('writes the Kaggle layout and reads back bit-identical float32 values', async () => {
    const ids = ['a1', 'b_2', 'c3'];
    const vectors = new Float32Array(ids.length * EMBEDDING_DIM);
    let seed = 12345;
    const rand = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) - 0.5;
    for (let i = 0; i < vectors.length; i++) vectors[i] = rand() * 0.2;
    // Extremes: smallest subnormal, largest float32, tiny, negative zero, exact values.
    vectors.set([1e-45, 3.4028234e38, -1.17549435e-38, -0, 0.5, 1, -1, 1e-7], 0);
    const file = path.join(dir, 'sub.csv');
    await writeSubmission(file, ids, vectors);

    const lines = fs.readFileSync(file, 'utf8').split('\n');
    expect(lines[0]).toBe(HEADER);
    expect(lines).toHaveLength(1 + ids.length * EMBEDDING_DIM + 1); // final newline
    expect(lines[lines.length - 1]).toBe('');
    expect(lines[5]).toBe('a1_4,0.5');
    expect(lines[1 + EMBEDDING_DIM]).toMatch(/^b_2_0,/);

    const back = await readSubmission(file);
    expect(back.ids).toEqual(ids);
    for (let i = 0; i < vectors.length; i++) {
      if (back.vectors[i] !== vectors[i]) throw new Error(`value ${i}: wrote ${vectors[i]}, read ${back.vectors[i]}`);
    }
    expect(listDir(dir)).toEqual(['sub.csv']);
  });

  it('formats values with the fewest digits that read back as the same float32', () => {
    expect(formatValue(Math.fround(0.018848453))).toBe('0.018848453');
    expect(formatValue(Math.fround(0.1))).toBe('0.1');
    expect(formatValue(-0)).toBe('0');
    for (const v of [Math.fround(Math.PI), Math.fround(-1 / 3), Math.fround(2e-40), Math.fround(123456.789)]) {
      expect(Math.fround(Number(formatValue(v)))).toBe(v);
      expect(formatValue(v).replace(/^-|e.*$|\./g, '').replace(/^0+/, '').length).toBeLessThanOrEqual(9);
    }
  });

  const unit = (n: number): Float32Array => new Float32Array(n * EMBEDDING_DIM).fill(1 / Math.sqrt(EMBEDDING_DIM));

  it.each([
    ['NaN', ['a', 'b'], () => Object.assign(unit(2), { [400]: NaN }), /value NaN for b_16 is not finite/],
    ['Infinity', ['a'], () => Object.assign(unit(1), { [7]: Infinity }), /value Infinity for a_7 is not finite/],
    ['too few values', ['a', 'b'], () => unit(1), /expected 2 x 384 = 768 values for 2 images, got 384/],
    ['too many values', ['a'], () => new Float32Array(385), /expected 1 x 384 = 384 values for 1 images, got 385/],
    ['duplicate ids', ['a', 'a'], () => unit(2), /duplicate imgId "a"/],
    ['bad id', ['a b'], () => unit(1), /invalid imgId "a b"/],
    ['no images', [], () => new Float32Array(0), /no images/],
  ] as const)('refuses %s, leaving no output and no temp file', async (_name, ids, make, reason) => {
    const file = path.join(dir, 'sub.csv');
    await expectBadInput(writeSubmission(file, [...ids], make()), file, reason);
    expect(listDir(dir)).toEqual([]);
  });

  it('keeps an existing file when refusing', async () => {
    const file = path.join(dir, 'sub.csv');
    fs.writeFileSync(file, 'previous');
    await expectBadInput(writeSubmission(file, ['a'], new Float32Array(3)), file, /cannot write submission/);
    expect(fs.readFileSync(file, 'utf8')).toBe('previous');
    expect(listDir(dir)).toEqual(['sub.csv']);
  });
});

describe('readSubmission rejects bad input, naming the file and the line', () => {
  const cases: [string, string[], RegExp][] = [
    ['bad header', ['imgId,val', ...imageRows('a')], /^line 1: bad header "imgId,val": expected "imgId_eId,val"$/],
    ['a prompts CSV', ['imgId,prompt', 'a,a cat'], /^line 1: bad header .*looks like a prompts CSV/],
    ['non-numeric value', [HEADER, ...replaceAt(imageRows('a'), 10, 'a_10,abc')], /^line 12: value "abc" of a_10 is not a finite number/],
    ['nan', [HEADER, ...replaceAt(imageRows('a'), 0, 'a_0,nan')], /^line 2: value "nan" of a_0 is not a finite number/],
    ['empty value', [HEADER, ...replaceAt(imageRows('a'), 3, 'a_3,')], /^line 5: value "" of a_3 is not a finite number/],
    ['value beyond float32', [HEADER, ...replaceAt(imageRows('a'), 1, 'a_1,1e39')], /^line 3: value 1e39 of a_1 is out of float32 range/],
    ['three fields', [HEADER, 'a_0,0.1,0.2'], /^line 2: expected 2 fields "<imgId>_<eId>,<value>", got 3/],
    ['one field', [HEADER, 'a_0'], /^line 2: expected 2 fields/],
    ['key without eId', [HEADER, 'a,0.1'], /^line 2: bad key "a": expected "<imgId>_<eId>"/],
    ['non-integer eId', [HEADER, 'a_x,0.1'], /^line 2: bad eId "x" in "a_x": expected an integer 0..383/],
    ['eId 384', [HEADER, ...imageRows('a'), 'a_384,0.1'], /^line 386: bad eId "384"/],
    ['eId with leading zero', [HEADER, 'a_00,0.1'], /^line 2: bad eId "00"/],
    ['a skipped row', [HEADER, ...spliceCopy(imageRows('a'), 200, 1), ...imageRows('b')], /^line 202: missing row a_200 \(the next row is a_201\)$/],
    ['an image short of its last row', [HEADER, ...imageRows('a').slice(0, 383), ...imageRows('b')], /^line 384: image "a" \(from line 2\) has 383 of 384 rows; missing eId 383$/],
    ['missing eIds at end of file', [HEADER, ...imageRows('a'), ...imageRows('b').slice(0, 10)], /^line 395: image "b" \(from line 386\) has 10 of 384 rows; missing eId 10, 11, 12, 13, 14, 15, 16, 17, \.\.\.$/],
    ['out-of-order rows (reported at the first skip)', [HEADER, ...imageRows('a', [0, 2, 1])], /^line 3: missing row a_1 \(the next row is a_2\)/],
    ['duplicate row', [HEADER, ...imageRows('a', [0, 1, 1])], /^line 4: duplicate row a_1/],
    ['non-contiguous image', [HEADER, ...imageRows('a').slice(0, 384), ...imageRows('b'), 'a_0,0.5'], /^line 770: rows of image "a" are not contiguous: its block ended on line 385/],
    ['bad imgId', [HEADER, 'a"b_0,0.1'], /^line 2: invalid imgId "a\\"b": contains a quote/],
    ['header only', [HEADER], /^no rows after the header$/],
  ];
  it.each(cases)('%s', async (_name, lines, reason) => {
    const file = subFile(lines);
    await expectBadInput(readSubmission(file), file, reason);
  });

  it('empty file', async () => {
    const file = path.join(dir, 'empty.csv');
    fs.writeFileSync(file, '');
    await expectBadInput(readSubmission(file), file, /^empty file: expected a header line "imgId_eId,val"/);
  });

  it('invalid UTF-8', async () => {
    const file = path.join(dir, 'latin1.csv');
    fs.writeFileSync(file, Buffer.concat([Buffer.from(`${HEADER}\na_0,0.1\n`), Buffer.from([0x61, 0xff, 0x5f, 0x31]), Buffer.from(',0.1\n')]));
    await expectBadInput(readSubmission(file), file, /^line 3: invalid UTF-8/);
  });

  it('finds invalid UTF-8 past the first read chunk (1 MiB) with the right line number', async () => {
    const rows = Array.from({ length: 300 * EMBEDDING_DIM }, (_, i) => `img${Math.floor(i / EMBEDDING_DIM)}_${i % EMBEDDING_DIM},0.25`);
    const file = path.join(dir, 'big.csv');
    fs.writeFileSync(file, Buffer.concat([Buffer.from(`${HEADER}\n${rows.join('\n')}\n`), Buffer.from([0xc3, 0x28, 0x0a])]));
    expect(fs.statSync(file).size).toBeGreaterThan(1 << 20);
    await expectBadInput(readSubmission(file), file, /^line 115202: invalid UTF-8/);
  });

  it('missing file', async () => {
    const file = path.join(dir, 'nope.csv');
    await expectBadInput(readSubmission(file), file, /^cannot read: no such file/);
  });
});

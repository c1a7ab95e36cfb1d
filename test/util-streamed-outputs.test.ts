// Issue 15, constant memory: the writers that stream a run's outputs row by row give the very bytes of
// the one-shot writers (writeNpy, writePromptsCsv, JSON.stringify), publish nothing before the end, and
// refuse a repeated id without keeping a set of ids.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodeNpy, npyHeader, readNpy } from '../src/util/npy.js';
import { NpyStreamWriter } from '../src/util/npy-stream.js';
import { JsonListStream } from '../src/util/json-list-stream.js';
import { CsvStream } from '../src/submission/csv-stream.js';
import { promptsLine, PROMPTS_HEADER, writePromptsCsv } from '../src/submission/prompts-csv.js';
import { tempDir } from './helpers/paths.js';

let dir: string;
beforeEach(() => {
  dir = tempDir('img2prompt-streamed-');
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const ls = () => fs.readdirSync(dir).sort();

function rows(n: number, dim: number, seed: number): Float32Array {
  return Float32Array.from({ length: n * dim }, (_, i) => Math.sin(seed + i) / 3);
}

describe('NpyStreamWriter', () => {
  it('gives the bytes of writeNpy for the rows that came, its header patched from the count reserved for', async () => {
    const file = path.join(dir, 'x.npy');
    const dim = 5;
    // Reserved for a million rows (7 digits), 6 came: the patched header must say (6, 5).
    const w = await NpyStreamWriter.create(file, dim, 1_000_000);
    const a = rows(2, dim, 1);
    const b = rows(4, dim, 2);
    await w.append(a);
    await w.append(b);
    expect(fs.existsSync(file)).toBe(false);
    await w.finish();
    const want = encodeNpy(Float32Array.from([...a, ...b]), [6, dim]);
    expect(fs.readFileSync(file).equals(want)).toBe(true);
    expect((await readNpy(file)).shape).toEqual([6, dim]);
    expect(ls()).toEqual(['x.npy']);
  });

  it('writes a [0, dim] array when no row came, and has a 128-byte header for any two safe integers', async () => {
    const file = path.join(dir, 'empty.npy');
    const w = await NpyStreamWriter.create(file, 3, 40);
    await w.finish();
    expect(fs.readFileSync(file).equals(encodeNpy(new Float32Array(0), [0, 3]))).toBe(true);
    for (const shape of [[0, 1], [1, 1], [Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER]]) expect(npyHeader(shape).length).toBe(128);
  });

  it('refuses rows that are not whole or beyond the reserved count, and leaves nothing when aborted', async () => {
    const file = path.join(dir, 'x.npy');
    const w = await NpyStreamWriter.create(file, 4, 2);
    await expect(w.append(new Float32Array(3))).rejects.toThrow(`${file}: 3 values are not whole rows of 4`);
    await w.append(new Float32Array(8));
    await expect(w.append(new Float32Array(4))).rejects.toThrow(`${file}: too many rows: 3 for at most 2`);
    expect(ls()).toHaveLength(1); // the temp
    await w.abort();
    expect(ls()).toEqual([]);
  });
});

describe('CsvStream', () => {
  const order = ['a1', 'b2', 'c3', 'd4'];

  it('writes the bytes of writePromptsCsv, rows in the order given, a row skipped where an image has none', async () => {
    const prompts = [{ imgId: 'a1', prompt: 'a cat, "quoted"' }, { imgId: 'c3', prompt: ' edge space' }, { imgId: 'd4', prompt: 'plain' }];
    const whole = path.join(dir, 'whole.csv');
    await writePromptsCsv(whole, prompts);
    const streamed = path.join(dir, 'streamed.csv');
    const s = await CsvStream.create(streamed, PROMPTS_HEADER.join(','), order);
    for (const row of prompts) await s.add(row.imgId, promptsLine(row));
    expect(fs.existsSync(streamed)).toBe(false);
    await s.commit();
    expect(fs.readFileSync(streamed).equals(fs.readFileSync(whole))).toBe(true);
  });

  it('refuses a repeated id, one out of order and one not in the list, naming the file; abort leaves nothing', async () => {
    const file = path.join(dir, 'p.csv');
    for (const ids of [['a1', 'a1'], ['c3', 'b2'], ['zz']]) {
      const s = await CsvStream.create(file, 'imgId,prompt', order);
      const last = ids.pop()!;
      for (const id of ids) await s.add(id, `${id},x`);
      await expect(s.add(last, `${last},x`)).rejects.toThrow(`${file}: cannot write row ${ids.length + 1}: imgId "${last}" is repeated, or not among the run's images in their order`);
      await s.abort();
    }
    expect(ls()).toEqual([]);
  });

  it('writes an id list with no header: empty when no row came', async () => {
    const file = path.join(dir, 'ids.txt');
    const s = await CsvStream.create(file, undefined, order);
    await s.commit();
    expect(fs.readFileSync(file, 'utf8')).toBe('');
  });
});

describe('JsonListStream', () => {
  it('gives the bytes of JSON.stringify(value, null, 2) + newline, with items or none', async () => {
    const fields = { model: 'tiny "q"', random: true, mode: 'fast', skipped: undefined };
    const items = [
      { imgId: 'a', labels: [{ bank: 'artists', label: 'by Ünïcode\nnew line', score: 0.25 }], picked: [], similarity: undefined },
      { imgId: 'b', nested: { deep: [1, [2, { three: 3 }]] }, empty: {} },
      'a plain string',
    ];
    for (const list of [items, []]) {
      const file = path.join(dir, `d${list.length}.json`);
      const s = await JsonListStream.create(file, fields, 'images');
      for (const item of list) await s.add(item);
      expect(fs.existsSync(file)).toBe(false);
      await s.commit();
      expect(fs.readFileSync(file, 'utf8')).toBe(JSON.stringify({ ...fields, images: list }, null, 2) + '\n');
    }
  });
});

// externalSort: items in key order with bounded memory (runs on disk, merged), equal to Array.sort's
// stable order; and the folder listing built on it, which lists a folder past one run in name order.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { externalSort } from '../src/util/external-sort.js';
import { imageFilesInFolder } from '../src/image/list-images.js';
import { commandImageList } from '../src/cli/input-images.js';
import { tempDir } from './helpers/paths.js';

async function* from<T>(items: readonly T[]): AsyncGenerator<T> {
  yield* items;
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

/** Names that break naive line files and locale-aware comparison: newlines, quotes, non-ASCII, case, surrogate pairs. */
function names(n: number, seed: number): string[] {
  const odd = ['line\nbreak', 'quo"te', 'Zebra', 'apple', 'ünï', '猫', '😀x', 'back\\slash', 'a', 'A', ''];
  let s = seed;
  const next = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0);
  return Array.from({ length: n }, () => `${odd[next() % odd.length]}${next() % 500}`);
}

const sortRunsDirs = () => fs.readdirSync(os.tmpdir()).filter((d) => d.startsWith('img2prompt-sort-'));

describe('externalSort', () => {
  it.each([
    ['one run (no file)', 1000, 5000],
    ['many runs merged', 5000, 97],
    ['runs of one item', 300, 1],
    ['exactly full runs', 1000, 100],
  ])('gives Array.sort\'s stable code-unit order: %s', async (_what, n, runSize) => {
    // Items with equal keys carry their input position: the order among them must be kept.
    const items = names(n, n + runSize).map((name, i) => ({ name, i }));
    const expected = [...items].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const before = sortRunsDirs();
    expect(await collect(externalSort(from(items), (x) => x.name, { runSize }))).toEqual(expected);
    expect(sortRunsDirs()).toEqual(before);
  });

  it('gives nothing for nothing, and removes its runs when left early', async () => {
    expect(await collect(externalSort(from<string>([]), (x) => x, { runSize: 2 }))).toEqual([]);
    const before = sortRunsDirs();
    const taken: string[] = [];
    for await (const x of externalSort(from(names(500, 3)), (x) => x, { runSize: 50 })) {
      taken.push(x);
      if (taken.length === 3) {
        expect(sortRunsDirs().length).toBe(before.length + 1);
        break;
      }
    }
    expect(taken).toEqual([...names(500, 3)].sort().slice(0, 3));
    expect(sortRunsDirs()).toEqual(before);
  });
});

describe('a folder past one run (65,536 names)', () => {
  const dir = tempDir('img2prompt-big-folder-');
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('lists 70,000 images in name order, hidden and non-image names left out, as the command lists them', async () => {
    const folder = path.join(dir, 'images');
    fs.mkdirSync(folder);
    const created: string[] = [];
    // Created in an order unrelated to the names, so the directory's own order is not the sorted one.
    for (let i = 0; i < 70_000; i++) {
      const name = `im${String((i * 7919) % 70_000).padStart(5, '0')}.${i % 3 === 0 ? 'jpg' : 'png'}`;
      fs.writeFileSync(path.join(folder, name), '');
      created.push(name);
    }
    fs.writeFileSync(path.join(folder, '.hidden.png'), '');
    fs.writeFileSync(path.join(folder, 'notes.txt'), '');
    fs.mkdirSync(path.join(folder, 'zz-folder.png'));
    const expected = created.sort().map((n) => path.join(folder, n));

    const listed = await imageFilesInFolder(folder);
    expect(listed.files.length).toBe(70_000);
    expect(listed.files).toEqual(expected);
    expect(listed.skipped).toEqual([{ file: path.join(folder, 'zz-folder.png'), reason: expect.any(String) }]);

    const command = await commandImageList([folder], {});
    try {
      expect(command.list.length).toBe(70_000);
      expect(await command.list.sources(0, 3)).toEqual(expected.slice(0, 3));
      expect(await command.list.sources(69_998, 70_000)).toEqual(expected.slice(69_998));
      expect(command.skipped.map((s) => s.file)).toEqual([path.join(folder, 'zz-folder.png')]);
    } finally {
      await command.close();
    }
  }, 120_000);
});

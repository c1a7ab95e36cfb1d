// The list file that holds a command's inputs on disk (image/image-list-file.ts), the id hash table that
// checks them unique (util/id-hash-table.ts), and the CLI listing built on both (cli/input-images.ts):
// what they read back must be exactly what an array would give, at any slice boundary, and a clash far
// apart in a long --from list must be refused naming both files, as before.
import fs from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { ImageListFile } from '../src/image/image-list-file.js';
import { commandImageList, commandImages, inputImageId } from '../src/cli/input-images.js';
import { IdHashTable } from '../src/util/id-hash-table.js';
import { eachImageOfInputs } from '../src/image/list-images.js';
import { tempDir } from './helpers/paths.js';

const dir = tempDir('img2prompt-list-test-');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Sources with the names that break naive line files: a newline, a quote, a comma, non-ASCII, a backslash. */
function sources(n: number): string[] {
  const odd = ['line\nbreak', 'quo"te', 'com,ma', 'ünïcødé 猫', 'back\\slash', 'tab\there'];
  return Array.from({ length: n }, (_, i) => (i % 97 === 5 ? `/imgs/${odd[i % odd.length]}-${i}.png` : `/imgs/im${i}.png`));
}

describe('ImageListFile', () => {
  it('gives back every slice, the ids and the sources exactly as the array it was made from', async () => {
    const all = sources(5000);
    const list = await ImageListFile.of(all, inputImageId);
    expect(list.length).toBe(5000);
    for (const [a, b] of [[0, 1], [0, 16], [63, 65], [64, 128], [100, 1100], [4990, 5000], [4999, 6000], [5000, 5001], [-3, 2]]) {
      const want = all.slice(Math.max(0, a!), b);
      expect((await list.sources(a!, b!))).toEqual(want);
      expect((await list.slice(a!, b!)).map((x) => [x.id, x.label, x.file])).toEqual(want.map((s) => [inputImageId(s), s, s]));
    }
    expect([...list.ids()]).toEqual(all.map(inputImageId));
    expect(list.idOrder().length).toBe(5000);
    const read: string[] = [];
    for await (const s of list) read.push(s);
    expect(read).toEqual(all);
    await list.close();
  });

  it('is unlinked from the start: no file of it is left behind', async () => {
    const before = fs.readdirSync(path.dirname(dir)).filter((n) => n.startsWith('img2prompt-list-') && !dir.endsWith(n));
    const list = await ImageListFile.of(['a.png'], inputImageId);
    const during = fs.readdirSync(path.dirname(dir)).filter((n) => n.startsWith('img2prompt-list-') && !dir.endsWith(n));
    expect(during.filter((n) => !before.includes(n))).toEqual([]);
    expect(await list.sources(0, 1)).toEqual(['a.png']);
    await list.close();
  });
});

describe('IdHashTable', () => {
  it('holds 200,000 ids without a false hit, finds each value, and reports a repeat', () => {
    const table = new IdHashTable();
    let hits = 0;
    for (let i = 0; i < 200_000; i++) if (table.set(`img${i}`, i * 3)) hits++;
    expect(hits).toBe(0);
    expect(table.size).toBe(200_000);
    let wrong = 0;
    for (let i = 0; i < 200_000; i++) if (table.get(`img${i}`) !== i * 3) wrong++;
    for (let i = 200_000; i < 210_000; i++) if (table.has(`img${i}`)) wrong++;
    expect(wrong).toBe(0);
    expect(table.set('img17', 5)).toBe(true);
    expect(table.get('img17')).toBe(5);
    expect(table.size).toBe(200_000);
    // Ids that differ only in length or order of the same characters hash apart.
    const t = new IdHashTable();
    for (const id of ['ab', 'ba', 'a', 'aa', 'aaa', '', 'ab\u0000']) expect(t.set(id)).toBe(false);
  });

  it('gives its memory back at release(), without waiting for a GC, and is usable again', () => {
    // A resizable buffer's pages are counted in RSS once written (the values are filled with "empty": 16 MiB).
    const rss = () => process.memoryUsage().rss / 2 ** 20;
    const before = rss();
    const table = new IdHashTable(1_000_000); // 2^21 slots of 16 bytes
    for (let i = 0; i < 1000; i++) table.set(`img${i}`, i);
    const full = rss();
    expect(full - before).toBeGreaterThan(15);
    table.release();
    expect(full - rss()).toBeGreaterThan(15);
    expect(table.size).toBe(0);
    expect(table.has('img5')).toBe(false);
    expect(table.set('img5', 9)).toBe(false);
    expect(table.get('img5')).toBe(9);
  });
});

describe('commandImageList', () => {
  const stdin = () => new PassThrough();

  it('refuses ids that clash far apart in a long --from list, naming both files, and lists nothing else', async () => {
    const folder = path.join(dir, 'clash');
    fs.mkdirSync(path.join(folder, 'sub'), { recursive: true });
    const files: string[] = [];
    for (let i = 0; i < 3000; i++) files.push(path.join(folder, `im${i}.png`));
    files.push(path.join(folder, 'sub', 'im7.jpg'));
    for (const f of files) fs.writeFileSync(f, 'x');
    const from = path.join(dir, 'clash.txt');
    fs.writeFileSync(from, `# a list\n${files.join('\n')}\n`);
    await expect(commandImageList([], { from }, { stdin: stdin() })).rejects.toThrow(
      `${JSON.stringify(files[7])} and ${JSON.stringify(files[3000])} share the id "im7"`,
    );
  });

  it('gives the images of a --from list in order, and a shard of them in blocks, as the array listing does', async () => {
    const folder = path.join(dir, 'many');
    fs.mkdirSync(folder, { recursive: true });
    const files = Array.from({ length: 700 }, (_, i) => path.join(folder, `p${String(i).padStart(4, '0')}.png`));
    for (const f of files) fs.writeFileSync(f, 'x');
    const from = path.join(dir, 'many.txt');
    fs.writeFileSync(from, files.slice(100).join('\n'));
    const listed = await commandImageList(files.slice(0, 100), { from }, { stdin: stdin() });
    expect(await listed.list.sources(0, 1000)).toEqual(files);
    await listed.close();
    const parts: string[][] = [];
    for (let i = 1; i <= 3; i++) {
      const shard = await commandImages([folder], { shard: `${i}/3` }, { shardBlock: 16, stdin: stdin() });
      expect(shard.unsharded!.files).toEqual(files);
      parts.push(shard.files);
      // Whole blocks of 16 of the listing, each in one shard.
      for (const f of shard.files) {
        const block = Math.floor(files.indexOf(f) / 16);
        expect(shard.files).toContain(files[block * 16]);
      }
    }
    expect(parts.flat().sort()).toEqual([...files].sort());
  });
  it('keeps input order while it stats a window of inputs ahead: files, a folder, URLs, skipped and missing inputs', async () => {
    const folder = path.join(dir, 'window');
    const sub = path.join(folder, 'sub');
    fs.mkdirSync(sub, { recursive: true });
    const inputs: string[] = [];
    const expected: string[] = [];
    const skipped: string[] = [];
    for (let i = 0; i < 300; i++) {
      const name = `w${String(i).padStart(3, '0')}`;
      if (i === 40) {
        // A folder among the files: its images come at its place, in name order.
        for (const n of ['b.png', 'a.png', 'c.jpg']) fs.writeFileSync(path.join(sub, n), 'x');
        inputs.push(sub);
        expected.push(path.join(sub, 'a.png'), path.join(sub, 'b.png'), path.join(sub, 'c.jpg'));
      } else if (i % 50 === 7) {
        const url = `http://127.0.0.1:9/${name}.png`;
        inputs.push(url);
        expected.push(url);
      } else if (i % 70 === 3) {
        const link = path.join(folder, `${name}.png`);
        fs.symlinkSync(`gone-${name}.png`, link);
        inputs.push(link);
        skipped.push(link);
      } else {
        const file = path.join(folder, `${name}.png`);
        fs.writeFileSync(file, 'x');
        inputs.push(file);
        expected.push(file);
      }
    }
    const from = path.join(dir, 'window.txt');
    fs.writeFileSync(from, inputs.join('\n'));
    const listed = await commandImageList([], { from }, { stdin: stdin() });
    expect(await listed.list.sources(0, 10_000)).toEqual(expected);
    expect(listed.skipped.map((s) => s.file)).toEqual(skipped);
    expect(listed.skipped[0]!.reason).toMatch(/^is a dangling symbolic link/);
    await listed.close();

    // A missing input far into the list is refused by name, after the inputs before it were listed.
    const missing = path.join(folder, 'not-there.png');
    fs.writeFileSync(from, [...inputs.slice(0, 200), missing, ...inputs.slice(200)].join('\n'));
    await expect(commandImageList([], { from }, { stdin: stdin() })).rejects.toThrow(`${missing}: not found`);

    // A consumer that stops early closes the input source.
    let closed = false;
    async function* source(): AsyncGenerator<string> {
      try {
        yield* inputs;
      } finally {
        closed = true;
      }
    }
    const first: string[] = [];
    for await (const { file } of eachImageOfInputs(source())) {
      first.push(file);
      if (first.length === 5) break;
    }
    expect(first).toEqual(inputs.slice(0, 5)); // the dangling link (4th) comes with its reason
    expect(closed).toBe(true);
  });
});

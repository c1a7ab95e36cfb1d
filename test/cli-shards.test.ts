// Issue 15, shards: three `predict --shard I/3` runs over the 7 Kaggle sample images (tiny random CLIP,
// batches of 2), put together by `merge`, give the very bytes of one unsharded run; the prompts CSVs
// likewise; so do 28 images in batches of 4; merge refuses a doubled and a missing id, naming them.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from './helpers/paths.js';
import { runCliInProcess, type CliResult } from './helpers/cli.js';
import { copyKaggleImages, restoreHome, useTinyClipHome, writeSmallBankAndLabels, type SmallBank } from './helpers/tiny-clip-home.js';
import { inShard, parseShard, shardMembership, shardOf } from '../src/submission/shard.js';
import { readSubmission } from '../src/submission/submission-csv.js';

const home = tempDir('img2prompt-shards-home-');
const work = tempDir('img2prompt-shards-work-');
const images = path.join(work, 'images');
let bank: SmallBank;
let saved: string | undefined;
const cli = (args: string[]): Promise<CliResult> => runCliInProcess(args, home, { timeoutMs: 200_000 });
const out = (name: string) => path.join(work, 'out', name);
const IDS = ['20057f34d', '227ef0887', '92e911621', 'a4e1c55a9', 'c98f79f71', 'd8edf2e40', 'f27825b2c'];

beforeAll(async () => {
  saved = await useTinyClipHome(home, 7);
  copyKaggleImages(images);
  bank = writeSmallBankAndLabels(work);
  fs.mkdirSync(path.join(work, 'out'));
});

afterAll(() => {
  restoreHome(saved);
  fs.rmSync(home, { recursive: true, force: true });
  fs.rmSync(work, { recursive: true, force: true });
});

describe('the shard of an id', () => {
  it('is the first 8 bytes of sha256(id) mod N, plus one', () => {
    // Computed once with node:crypto: they pin the rule, so machines on two releases still agree.
    expect(IDS.map((id) => shardOf(id, 3))).toEqual([3, 2, 1, 1, 3, 2, 2]);
    expect(IDS.every((id) => shardOf(id, 1) === 1)).toBe(true);
  });

  it('goes by blocks of consecutive images, each the shard of its first id', () => {
    // Blocks of 2: [20057f34d 227ef0887] → 3, [92e911621 a4e1c55a9] → 1, [c98f79f71 d8edf2e40] → 3, [f27825b2c] → 2.
    expect([1, 2, 3].map((index) => shardMembership(IDS, { index, count: 3 }, 2))).toEqual([
      [false, false, true, true, false, false, false],
      [false, false, false, false, false, false, true],
      [true, true, false, false, true, true, false],
    ]);
    expect(shardMembership(IDS, { index: 2, count: 3 }, 1)).toEqual(IDS.map((id) => shardOf(id, 3) === 2));
  });

  it('parses I/N and refuses what is not a shard', () => {
    expect(parseShard('2/3')).toEqual({ index: 2, count: 3 });
    expect(inShard('92e911621', { index: 1, count: 3 })).toBe(true);
    for (const bad of ['0/3', '4/3', '1/0', '1', 'a/b', '-1/3']) expect(() => parseShard(bad)).toThrow(/--shard must be I\/N with 1 <= I <= N/);
  });
});

/** Batches of 2 and a gap sample of one batch: each shard encodes the sample, then its own blocks. */
const BATCHES = ['--batch-size', '2', '--gap-images', '2'];
const inShardOf = (i: number) => IDS.filter((_, k) => shardMembership(IDS, { index: i, count: 3 }, 2)[k]);

describe('predict --shard I/3 and merge', () => {
  const parts = [1, 2, 3].map((i) => out(`part${i}.csv`));
  const promptParts = [1, 2, 3].map((i) => out(`prompts${i}.csv`));

  beforeAll(async () => {
    const whole = await cli(['predict', images, '-o', out('whole.csv'), '--prompts-out', out('whole-prompts.csv'), ...BATCHES, ...bank.options]);
    expect(whole.code, whole.stderr).toBe(0);
    for (let i = 1; i <= 3; i++) {
      // The same images listed another way (a file list, with a comment and a blank line): the same split.
      const list = out(`list${i}.txt`);
      fs.writeFileSync(list, `# shard ${i}\n\n` + IDS.map((id) => path.join(images, `${id}.png`)).join('\n') + '\n');
      const r = await cli(['predict', '--from', list, '--shard', `${i}/3`, '-o', parts[i - 1], '--prompts-out', promptParts[i - 1], ...BATCHES, ...bank.options]);
      expect(r.code, r.stderr).toBe(0);
    }
  }, 600_000);

  it('each part holds its shard\'s images, and only them', async () => {
    for (let i = 1; i <= 3; i++) {
      const { ids } = await readSubmission(parts[i - 1]);
      expect(ids).toEqual(inShardOf(i));
    }
  });

  it('merged parts are byte-identical to the unsharded submission and prompts CSV', async () => {
    for (const extra of [[], ['--images', images]]) {
      const r = await cli(['merge', ...[...parts].reverse(), '-o', out('merged.csv'), ...extra]);
      expect(r.code, r.stderr).toBe(0);
      expect(fs.readFileSync(out('merged.csv')).equals(fs.readFileSync(out('whole.csv')))).toBe(true);
    }
    const r = await cli(['merge', ...promptParts, '-o', out('merged-prompts.csv'), '--images', images]);
    expect(r.code, r.stderr).toBe(0);
    expect(fs.readFileSync(out('merged-prompts.csv'), 'utf8')).toBe(fs.readFileSync(out('whole-prompts.csv'), 'utf8'));
  });

  it('--ids gives the order of the ids file', async () => {
    const idsFile = out('ids.txt');
    const order = [...IDS].reverse();
    fs.writeFileSync(idsFile, order.join('\n') + '\n');
    const r = await cli(['merge', ...parts, '-o', out('by-ids.csv'), '--ids', idsFile]);
    expect(r.code, r.stderr).toBe(0);
    expect((await readSubmission(out('by-ids.csv'))).ids).toEqual(order);
  });

  it('refuses an id in two parts, naming it and both parts, and writes nothing', async () => {
    const target = out('doubled.csv');
    const r = await cli(['merge', parts[0], parts[1], parts[2], parts[2], '-o', target]);
    expect(r.code).toBe(1);
    const doubled = inShardOf(3);
    expect(r.stderr).toContain(`${doubled.length} image ids are in more than one part`);
    for (const id of doubled) expect(r.stderr).toContain(`"${id}" in ${parts[2]} and ${parts[2]}`);
    expect(fs.existsSync(target)).toBe(false);
  });

  it('refuses a missing id (a part left out), naming the ids, given --images or --ids', async () => {
    const target = out('missing.csv');
    for (const [expected, order] of [[['--images', images], IDS], [['--ids', out('ids.txt')], [...IDS].reverse()]] as const) {
      // Named in the expected order: the folder's, or the ids file's.
      const missing = order.filter((id) => inShardOf(1).includes(id));
      const r = await cli(['merge', parts[1], parts[2], '-o', target, ...expected]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`img2prompt: ${missing.length} expected image ids are in no part (a shard not run, or a part left out?): ${missing.map((id) => `"${id}"`).join(', ')}\n`);
      expect(fs.existsSync(target)).toBe(false);
    }
  });

  it('refuses parts of mixed kinds', async () => {
    const r = await cli(['merge', parts[0], promptParts[1], '-o', out('mixed.csv')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('the parts mix kinds');
  });

  it('--shard with a bad value is refused before any model is opened', async () => {
    const r = await cli(['predict', images, '--shard', '4/3', '-o', out('bad.csv'), ...bank.options]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('img2prompt: --shard must be I/N with 1 <= I <= N (e.g. 2/3 for the second of three shards), got "4/3"\n');
  });
});

describe('28 images in batches of 4 over 3 shards', () => {
  // Each Kaggle image under four names: enough batches that an image's neighbours in its batch matter.
  const many = path.join(work, 'many');
  const names = IDS.flatMap((id) => ['a', 'b', 'c', 'd'].map((x) => `${x}${id}`)).sort();

  it('merge gives the bytes of the unsharded run', async () => {
    fs.mkdirSync(many, { recursive: true });
    for (const name of names) fs.copyFileSync(path.join(images, `${name.slice(1)}.png`), path.join(many, `${name}.png`));
    const opts = ['--batch-size', '4', '--gap-images', '4', ...bank.options];
    const whole = await cli(['predict', many, '-o', out('many-whole.csv'), ...opts]);
    expect(whole.code, whole.stderr).toBe(0);
    const manyParts = [1, 2, 3].map((i) => out(`many-part${i}.csv`));
    for (let i = 1; i <= 3; i++) {
      const r = await cli(['predict', many, '--shard', `${i}/3`, '-o', manyParts[i - 1]!, ...opts]);
      expect(r.code, r.stderr).toBe(0);
    }
    const r = await cli(['merge', ...manyParts, '-o', out('many-merged.csv'), '--images', many]);
    expect(r.code, r.stderr).toBe(0);
    expect(fs.readFileSync(out('many-merged.csv')).equals(fs.readFileSync(out('many-whole.csv')))).toBe(true);
  }, 600_000);
});

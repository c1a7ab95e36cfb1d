// Issue 15, shards: three `predict --shard I/3` runs over the 7 Kaggle sample images (tiny random CLIP),
// put together by `merge`, give the very bytes of one unsharded run; the prompts CSVs likewise; merge
// refuses a doubled and a missing id, naming them.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from './helpers/paths.js';
import { runCliInProcess, type CliResult } from './helpers/cli.js';
import { copyKaggleImages, restoreHome, useTinyClipHome, writeSmallBankAndLabels, type SmallBank } from './helpers/tiny-clip-home.js';
import { inShard, parseShard, shardOf } from '../src/submission/shard.js';
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

  it('parses I/N and refuses what is not a shard', () => {
    expect(parseShard('2/3')).toEqual({ index: 2, count: 3 });
    expect(inShard('92e911621', { index: 1, count: 3 })).toBe(true);
    for (const bad of ['0/3', '4/3', '1/0', '1', 'a/b', '-1/3']) expect(() => parseShard(bad)).toThrow(/--shard must be I\/N with 1 <= I <= N/);
  });
});

describe('predict --shard I/3 and merge', () => {
  const parts = [1, 2, 3].map((i) => out(`part${i}.csv`));
  const promptParts = [1, 2, 3].map((i) => out(`prompts${i}.csv`));

  beforeAll(async () => {
    const whole = await cli(['predict', images, '-o', out('whole.csv'), '--prompts-out', out('whole-prompts.csv'), ...bank.options]);
    expect(whole.code, whole.stderr).toBe(0);
    for (let i = 1; i <= 3; i++) {
      // The shard's inputs in another order (a file list, reversed): the split depends on the ids alone.
      const list = out(`list${i}.txt`);
      fs.writeFileSync(list, `# shard ${i}\n\n` + IDS.map((id) => path.join(images, `${id}.png`)).reverse().join('\n') + '\n');
      const r = await cli(['predict', '--from', list, '--shard', `${i}/3`, '-o', parts[i - 1], '--prompts-out', promptParts[i - 1], ...bank.options]);
      expect(r.code, r.stderr).toBe(0);
    }
  }, 600_000);

  it('each part holds its shard\'s images, and only them', async () => {
    for (let i = 1; i <= 3; i++) {
      const { ids } = await readSubmission(parts[i - 1]);
      expect(new Set(ids)).toEqual(new Set(IDS.filter((id) => shardOf(id, 3) === i)));
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
    const r = await cli(['merge', parts[0], parts[1], parts[2], parts[1], '-o', target]);
    expect(r.code).toBe(1);
    const doubled = IDS.filter((id) => shardOf(id, 3) === 2);
    expect(r.stderr).toContain(`${doubled.length} image ids are in more than one part`);
    for (const id of doubled) expect(r.stderr).toContain(`"${id}" in ${parts[1]} and ${parts[1]}`);
    expect(fs.existsSync(target)).toBe(false);
  });

  it('refuses a missing id (a part left out), naming the ids, given --images or --ids', async () => {
    const target = out('missing.csv');
    for (const [expected, order] of [[['--images', images], IDS], [['--ids', out('ids.txt')], [...IDS].reverse()]] as const) {
      // Named in the expected order: the folder's, or the ids file's.
      const missing = order.filter((id) => shardOf(id, 3) === 1);
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

// Issue 15, constant memory: predict writes its submission and CSVs from what the run hands out, the
// images resumed from the checkpoint read back from its file. A run whose final write failed after every
// image reached the checkpoint is resumed by a new run that holds nothing of it in memory: every
// image comes from the checkpoint file, and the outputs are byte-identical to one uninterrupted run.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from './helpers/paths.js';
import { runCliInProcess, type CliResult } from './helpers/cli.js';
import { injectOutputFault } from './helpers/faulty-output-fs.js';
import { copyKaggleImages, restoreHome, useTinyClipHome, writeSmallBankAndLabels, type SmallBank } from './helpers/tiny-clip-home.js';

const home = tempDir('img2prompt-streamed-home-');
const work = tempDir('img2prompt-streamed-work-');
const images = path.join(work, 'images');
let bank: SmallBank;
let saved: string | undefined;
const cli = (args: string[]): Promise<CliResult> => runCliInProcess(args, home, { timeoutMs: 200_000 });
const out = (name: string) => path.join(work, name);

beforeAll(async () => {
  saved = await useTinyClipHome(home, 11);
  copyKaggleImages(images);
  bank = writeSmallBankAndLabels(work);
});

afterAll(() => {
  restoreHome(saved);
  fs.rmSync(home, { recursive: true, force: true });
  fs.rmSync(work, { recursive: true, force: true });
});

describe('predict outputs written from the checkpoint', () => {
  it('a new run resuming one whose every image is in the checkpoint writes the bytes of an uninterrupted run', async () => {
    const args = (dir: string) => ['predict', images, '-o', path.join(dir, 'sub.csv'), '--prompts-out', path.join(dir, 'prompts.csv'), '--nearest-out', path.join(dir, 'nearest.csv'), '--batch-size', '3', ...bank.options];
    fs.mkdirSync(out('whole'));
    fs.mkdirSync(out('resumed'));
    const whole = await cli(args(out('whole')));
    expect(whole.code, whole.stderr).toBe(0);

    // The disk fills while the submission is written: that is after the last image reached the checkpoint.
    const restore = injectOutputFault({ match: '^\\.sub\\.csv\\.\\d+\\.', kind: 'ENOSPC', after: 20_000 });
    let failed: CliResult;
    try {
      failed = await cli(args(out('resumed')));
    } finally {
      restore();
    }
    expect(failed.code, failed.stderr).toBe(1);
    expect(failed.stderr).toContain('no space left on device');
    // Nothing published, no temp left: only the resume files.
    expect(fs.readdirSync(out('resumed')).sort()).toEqual(['sub.csv.ckpt', 'sub.csv.ckpt.gap.json', 'sub.csv.ckpt.inputs', 'sub.csv.ckpt.sample']);
    const records = fs.readFileSync(out('resumed/sub.csv.ckpt'), 'utf8').trim().split('\n').length - 1;
    expect(records).toBe(7);

    const resumed = await cli([...args(out('resumed')), '--resume']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toContain('7 of 7 images already done');
    expect(resumed.stderr).toMatch(/7 images → .*sub\.csv \(valid\) in [\d.]+ s, 7 from the checkpoint; CLIP encoded 0 images/);
    for (const name of ['sub.csv', 'prompts.csv', 'nearest.csv']) {
      expect(fs.readFileSync(out(`resumed/${name}`)).equals(fs.readFileSync(out(`whole/${name}`))), name).toBe(true);
    }
    expect(fs.readdirSync(out('resumed')).sort()).toEqual(['nearest.csv', 'prompts.csv', 'sub.csv']);
  }, 400_000);
});

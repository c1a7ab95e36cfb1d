import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClipModel } from '../src/clip/model.js';
import { readNpy } from '../src/util/npy.js';
import { asset, KAGGLE_SAMPLE, tempDir } from './helpers/paths.js';
import { runCliInProcess, type CliResult } from './helpers/cli.js';

const KAGGLE_IDS = ['20057f34d', '227ef0887', '92e911621', 'a4e1c55a9', 'c98f79f71', 'd8edf2e40', 'f27825b2c'];
const home = tempDir('img2prompt-cli-embed-images-');
const work = tempDir('img2prompt-cli-embed-images-work-');
let saved: string | undefined;

const cli = (...args: string[]): Promise<CliResult> => runCliInProcess(args, home);

/** Row `i` of a [rows, dim] matrix. */
const row = (m: Float32Array, dim: number, i: number) => m.subarray(i * dim, (i + 1) * dim);

beforeAll(async () => {
  saved = process.env.IMG2PROMPT_HOME;
  process.env.IMG2PROMPT_HOME = home;
});
afterAll(async () => {
  if (saved === undefined) delete process.env.IMG2PROMPT_HOME;
  else process.env.IMG2PROMPT_HOME = saved;
  fs.rmSync(home, { recursive: true, force: true });
  fs.rmSync(work, { recursive: true, force: true });
});

describe('img2prompt models random → models list → embed-images', () => {
  it('installs a random tiny CLIP that models list marks RANDOM', async () => {
    const r = await cli('models', 'random', '--arch', 'tiny', '--seed', '3', '--name', 'tiny-cli');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/installed random tiny as tiny-cli in /);
    const list = await cli('models', 'list');
    expect(list.code, list.stderr).toBe(0);
    const line = list.stdout.split('\n').find((l) => l.startsWith('tiny-cli '));
    expect(line).toMatch(/^tiny-cli\s+installed\s+random\s.*RANDOM \(untrained; tests only\)$/);
    const json = JSON.parse((await cli('models', 'list', '--json')).stdout) as { name: string; random: boolean | null }[];
    expect(json.find((m) => m.name === 'tiny-cli')?.random).toBe(true);
  });

  it('embeds the 7 Kaggle images, reports the truncated PNG by path and reason, exits 1', async () => {
    const dir = path.join(work, 'images');
    fs.mkdirSync(dir);
    for (const id of KAGGLE_IDS) fs.copyFileSync(path.join(KAGGLE_SAMPLE, 'images', `${id}.png`), path.join(dir, `${id}.png`));
    const png = fs.readFileSync(path.join(dir, 'a4e1c55a9.png'));
    const broken = path.join(dir, 'a4e1c55a9-truncated.png'); // sorts among the good ones
    fs.writeFileSync(broken, png.subarray(0, png.length >> 1));
    const out = path.join(work, 'out', 'emb.npy');

    const r = await cli('embed-images', dir, '--model', 'tiny-cli', '-o', out, '--batch-size', '3');
    expect(r.code, r.stderr).toBe(1);
    const reason = 'cannot decode image: corrupt or truncated pixel data (header reads png 512x512)';
    expect(r.stderr).toContain(`img2prompt: 1 of 8 images could not be read; they have no row (listed in ${out}.errors.txt):\n  ${broken}: ${reason}`);
    const errors = fs.readFileSync(`${out}.errors.txt`, 'utf8');
    expect(errors.startsWith(`${broken}\t${reason}`) && errors.endsWith('\n') && errors.split('\n').length === 2, errors).toBe(true);
    expect(r.stderr).toMatch(/RANDOM weights/);

    const npy = await readNpy(out);
    expect(npy.shape).toEqual([7, 32]);
    const ids = fs.readFileSync(path.join(work, 'out', 'emb.ids.txt'), 'utf8');
    expect(ids).toBe(KAGGLE_IDS.join('\n') + '\n');
    for (let i = 0; i < 7; i++) expect(Math.hypot(...row(npy.data, 32, i))).toBeCloseTo(1, 5);

    // Same rows, in the same order, as the API on the good files (one at a time, so batching cannot hide a mix-up).
    const model = await ClipModel.open('tiny-cli', { towers: ['vision'] });
    for (let i = 0; i < 7; i++) {
      const one = await model.encodeImages([path.join(dir, `${KAGGLE_IDS[i]}.png`)], { batchSize: 1 });
      let max = 0;
      for (let j = 0; j < 32; j++) max = Math.max(max, Math.abs(one.embeds[j]! - row(npy.data, 32, i)[j]!));
      expect(max, KAGGLE_IDS[i]).toBeLessThan(1e-6);
    }
    // ... and the rows really differ from image to image.
    expect(Math.abs(row(npy.data, 32, 0)[0]! - row(npy.data, 32, 1)[0]!)).toBeGreaterThan(1e-4);
    model.close();
  });
});

describe('the decode pixel limit (--max-pixels, encodeImages maxPixels)', () => {
  let big: string;
  let small: string[];
  beforeAll(async () => {
    const dir = path.join(work, 'limit');
    fs.mkdirSync(dir);
    small = ['20057f34d', 'c98f79f71'].map((id) => path.join(dir, `${id}.png`));
    for (const f of small) fs.copyFileSync(path.join(KAGGLE_SAMPLE, 'images', path.basename(f)), f);
    big = path.join(dir, 'big.png'); // 600x500 = 300,000 pixels, over 512x512 = 262,144
    await sharp({ create: { width: 600, height: 500, channels: 3, background: { r: 200, g: 30, b: 90 } } }).png().toFile(big);
  });

  it('fails the image over the limit with its size and goes on with the rest (API)', async () => {
    const model = await ClipModel.open('tiny-cli', { towers: ['vision'] });
    const failed: string[] = [];
    const r = await model.encodeImages([small[0]!, big, small[1]!], { maxPixels: 262_144, batchSize: 2, onFailure: (f) => failed.push(f.file) });
    expect(r.ids).toEqual(['20057f34d', 'c98f79f71']);
    expect(r.failures).toEqual([{ file: big, reason: '600x500 = 300,000 pixels is over the limit of 262,144 pixels (maxPixels, --max-pixels)' }]);
    expect(failed).toEqual([big]);
    // Without the limit all three load.
    expect((await model.encodeImages([small[0]!, big, small[1]!])).ids).toEqual(['20057f34d', 'big', 'c98f79f71']);
    await expect(model.encodeImages(small, { maxPixels: 0 })).rejects.toThrow(new RangeError('ClipModel.encodeImages(): Expected an integer >= 1 for maxPixels but received 0'));
    model.close();
  });

  it('fails the image over the limit with its size and goes on with the rest (CLI)', async () => {
    const out = path.join(work, 'limit.npy');
    const r = await cli('embed-images', small[0]!, big, small[1]!, '--model', 'tiny-cli', '-o', out, '--max-pixels', '262144');
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(`\n  ${big}: 600x500 = 300,000 pixels is over the limit of 262,144 pixels (maxPixels, --max-pixels)`);
    expect((await readNpy(out)).shape).toEqual([2, 32]);
    expect(fs.readFileSync(path.join(work, 'limit.ids.txt'), 'utf8')).toBe('20057f34d\nc98f79f71\n');
    // At the limit exactly, nothing fails, and the earlier run's errors file, now wrong, is gone.
    expect((await cli('embed-images', big, '--model', 'tiny-cli', '-o', out, '--max-pixels', '300000')).code).toBe(0);
    expect(fs.existsSync(`${out}.errors.txt`)).toBe(false);
  });

  it('refuses a --max-pixels that is not a positive integer, before loading anything', async () => {
    for (const bad of ['0', '-5', '1.5', 'lots', '1e6']) {
      const r = await cli('embed-images', small[0]!, '--model', 'tiny-cli', '-o', path.join(work, 'never.npy'), '--max-pixels', bad);
      expect(r.code).toBe(1);
      expect(r.stderr.trim()).toBe(`img2prompt: --max-pixels must be a positive integer, got "${bad}"`);
    }
    expect(fs.existsSync(path.join(work, 'never.npy'))).toBe(false);
  });
});

describe('--exif and --image-processor', () => {
  const ROTATED = asset('images', 'pillow-hopper_orientation_6.jpg');
  const UPRIGHT = asset('images', 'pillow-hopper.jpg');
  const ROCKET = asset('images', 'skimage-rocket.jpg');

  async function embed(name: string, ...flags: string[]): Promise<Float32Array> {
    const out = path.join(work, `${name}.npy`);
    const r = await cli('embed-images', ROTATED, UPRIGHT, ROCKET, '--model', 'tiny-cli', '-o', out, ...flags);
    expect(r.code, r.stderr).toBe(0);
    return (await readNpy(out)).data as Float32Array;
  }
  const same = (a: Float32Array, b: Float32Array) => a.every((v, i) => v === b[i]);

  it('--exif ignore changes the rotated photo only; --image-processor hf changes the preprocessing', async () => {
    const applied = await embed('exif-default');
    const ignored = await embed('exif-ignore', '--exif', 'ignore');
    const hf = await embed('processor-hf', '--image-processor', 'hf');
    expect(same(row(applied, 32, 0), row(ignored, 32, 0))).toBe(false);
    expect(same(row(applied, 32, 1), row(ignored, 32, 1))).toBe(true);
    expect(same(row(applied, 32, 2), row(ignored, 32, 2))).toBe(true);
    expect(same(applied, await embed('exif-apply', '--exif', 'apply'))).toBe(true);

    // The same rows as the API with the same choices.
    const model = await ClipModel.open('tiny-cli', { towers: ['vision'], imageProcessor: 'hf' });
    expect(model.imageProcessor).toBe('hf');
    const api = (await model.encodeImages([ROTATED, UPRIGHT, ROCKET])).embeds;
    model.close();
    expect(Math.max(...api.map((v, i) => Math.abs(v - hf[i]!)))).toBeLessThan(1e-6);
    expect(same(row(applied, 32, 2), row(hf, 32, 2))).toBe(false); // tiny-cli is open_clip: the rocket's crop moves
  });

  it('refuses other values as usage errors (exit 2), naming the choices', async () => {
    for (const [flag, value] of [['--exif', 'rotate'], ['--image-processor', 'timm']] as const) {
      const r = await cli('embed-images', UPRIGHT, '--model', 'tiny-cli', '-o', path.join(work, 'never.npy'), flag, value);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`option '${flag} <\\w+>' argument '${value}' is invalid. Allowed choices are`));
    }
  });
});

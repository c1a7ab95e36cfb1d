// `img2prompt labels build` and `img2prompt interrogate` as a user runs them: a random tiny CLIP,
// 40-line label lists (to stay fast), the 7 Kaggle images plus one unreadable file.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClipModel } from '../src/clip/model.js';
import { trendingLabels } from '../src/interrogate/label-banks.js';
import { readPromptsCsv } from '../src/submission/prompts-csv.js';
import { validateSubmission } from '../src/submission/validate.js';
import { asset, tempDir } from './helpers/paths.js';
import { copyKaggleImages, restoreHome, useTinyClipHome } from './helpers/tiny-clip-home.js';

const SAMPLE_IDS = ['20057f34d', '227ef0887', '92e911621', 'a4e1c55a9', 'c98f79f71', 'd8edf2e40', 'f27825b2c'];

const home = tempDir('img2prompt-interrogate-home-');
const work = tempDir('img2prompt-interrogate-work-');
const images = path.join(work, 'images');
const labelsDir = path.join(work, 'labels');
const lists: Record<string, string[]> = {};
let saved: string | undefined;

function cli(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    env: { ...process.env, IMG2PROMPT_HOME: home, IMG2PROMPT_PROGRESS: '0' },
    encoding: 'utf8',
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const COMMON = ['--model', 'tiny', '--labels-dir', labelsDir];

beforeAll(async () => {
  saved = await useTinyClipHome(home, 5);
  copyKaggleImages(images);
  fs.writeFileSync(path.join(images, 'broken.png'), 'not a png at all');
  fs.mkdirSync(labelsDir);
  for (const f of ['artists', 'flavors', 'mediums', 'movements', 'sites', 'negative']) {
    const all = fs.readFileSync(asset('labels', `${f}.txt`), 'utf8').split('\n').filter((l) => l.trim() !== '');
    lists[f] = all.slice(0, 40);
    fs.writeFileSync(path.join(labelsDir, `${f}.txt`), lists[f]!.join('\n') + '\n');
  }
});

afterAll(() => {
  restoreHome(saved);
  fs.rmSync(home, { recursive: true, force: true });
  fs.rmSync(work, { recursive: true, force: true });
});

interface Details {
  model: string;
  random: boolean;
  mode: string;
  images: { imgId: string; file: string; prompt: string; similarity: number; labels: { label: string; bank: string; score: number }[] }[];
}

describe('img2prompt labels build / interrogate', () => {
  it('builds every bank once, then finds them cached', () => {
    const first = cli(['labels', 'build', ...COMMON]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toContain('RANDOM weights');
    for (const bank of ['artists', 'flavors', 'mediums', 'movements', 'trendings', 'negative']) expect(first.stderr).toMatch(new RegExp(`bank ${bank}: \\d+ labels, built`));
    const again = cli(['labels', 'build', ...COMMON]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).not.toContain('built');
    expect(again.stderr).toMatch(/bank flavors: 40 labels, cached/);
  });

  it('fast: a prompts CSV for the readable images, the broken one reported, details that hold the true similarities', async () => {
    const out = path.join(work, 'fast.csv');
    const details = path.join(work, 'fast.json');
    const r = cli(['interrogate', images, ...COMMON, '--mode', 'fast', '-o', out, '--details', details]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(path.join(images, 'broken.png'));
    expect(r.stderr).toContain('1 of 8 images could not be read');

    const rows = await readPromptsCsv(out);
    expect(rows.map((x) => x.imgId)).toEqual(SAMPLE_IDS);
    const d = JSON.parse(fs.readFileSync(details, 'utf8')) as Details;
    expect(d.random).toBe(true);
    expect(d.images.map((x) => x.prompt)).toEqual(rows.map((x) => x.prompt));

    // Every label is from the lists, the prompt is those labels joined and fits 77 CLIP tokens, and the
    // reported similarity is the cosine of the prompt's text embedding with the image embedding.
    const known = new Set([...lists.artists!.map((a) => `by ${a}`), ...lists.artists!.map((a) => `inspired by ${a}`), ...lists.flavors!, ...lists.mediums!, ...lists.movements!]);
    const clip = await ClipModel.open('tiny');
    try {
      const encoded = await clip.encodeImages(d.images.map((x) => x.file));
      const texts = await clip.encodeTexts(d.images.map((x) => x.prompt));
      d.images.forEach((x, i) => {
        expect(x.prompt).toBe(x.labels.map((l) => l.label).join(', '));
        expect(clip.countTokens(x.prompt)).toBeLessThanOrEqual(77);
        for (const l of x.labels) expect(known.has(l.label) || trendingLabels(lists.sites!).includes(l.label), l.label).toBe(true);
        let cos = 0;
        for (let j = 0; j < clip.dim; j++) cos += texts[i * clip.dim + j]! * encoded.embeds[i * clip.dim + j]!;
        expect(x.similarity).toBeCloseTo(cos, 4);
      });
    } finally {
      clip.close();
    }

    // Without --details the similarity is not computed, and the prompts are the same.
    const plain = path.join(work, 'fast-plain.csv');
    expect(cli(['interrogate', images, ...COMMON, '--mode', 'fast', '-o', plain]).code).toBe(1);
    expect(fs.readFileSync(plain, 'utf8')).toBe(fs.readFileSync(out, 'utf8'));

    // The prompts CSV feeds `embed`, which writes a submission that validates.
    const sub = path.join(work, 'fast-sub.csv');
    const e = cli(['embed', '--prompts', out, '-o', sub]);
    expect(e.code, e.stderr).toBe(0);
    const report = await validateSubmission(sub, { imageIds: SAMPLE_IDS });
    expect(report.problems).toEqual([]);
  });

  it('classic: "medium by artist, trending, movement, flavors" from the lists', async () => {
    const out = path.join(work, 'classic.csv');
    const r = cli(['interrogate', path.join(images, `${SAMPLE_IDS[0]}.png`), path.join(images, `${SAMPLE_IDS[1]}.png`), ...COMMON, '--mode', 'classic', '-o', out]);
    expect(r.code, r.stderr).toBe(0);
    const rows = await readPromptsCsv(out);
    expect(rows).toHaveLength(2);
    for (const { prompt } of rows) {
      const [head, trending, movement, ...flavors] = prompt.split(', ');
      expect(lists.mediums!.some((m) => lists.artists!.some((a) => head === `${m} by ${a}` || head === `${m} inspired by ${a}`)), head).toBe(true);
      expect(trendingLabels(lists.sites!)).toContain(trending);
      expect(lists.movements).toContain(movement);
      expect(flavors).toHaveLength(3);
      for (const f of flavors) expect(lists.flavors).toContain(f);
    }
  });

  it('refuses an unknown mode and a folder without images, leaving no output', () => {
    const out = path.join(work, 'never.csv');
    const bad = cli(['interrogate', images, ...COMMON, '--mode', 'fastest', '-o', out]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/fastest/);
    const empty = path.join(work, 'empty');
    fs.mkdirSync(empty);
    const none = cli(['interrogate', empty, ...COMMON, '-o', out]);
    expect(none.code).not.toBe(0);
    expect(none.stderr).toContain('no image files found');
    expect(fs.existsSync(out)).toBe(false);
  });
});

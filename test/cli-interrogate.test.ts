// `img2prompt labels build` and `img2prompt interrogate` as a user runs them: a random tiny CLIP,
// 40-line label lists (to stay fast), the 7 Kaggle images plus one unreadable file.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClipModel } from '../src/clip/model.js';
import { trendingLabels } from '../src/interrogate/label-banks.js';
import { readBankFile } from '../src/interrogate/bank-cache.js';
import { readPromptsCsv } from '../src/submission/prompts-csv.js';
import { validateSubmission } from '../src/submission/validate.js';
import { asset, tempDir } from './helpers/paths.js';
import { runCliInProcess, type CliResult } from './helpers/cli.js';
import { copyKaggleImages, restoreHome, useTinyClipHome } from './helpers/tiny-clip-home.js';

const SAMPLE_IDS = ['20057f34d', '227ef0887', '92e911621', 'a4e1c55a9', 'c98f79f71', 'd8edf2e40', 'f27825b2c'];

const home = tempDir('img2prompt-interrogate-home-');
const work = tempDir('img2prompt-interrogate-work-');
const images = path.join(work, 'images');
const labelsDir = path.join(work, 'labels');
const lists: Record<string, string[]> = {};
let saved: string | undefined;

const cli = (args: string[]): Promise<CliResult> => runCliInProcess(args, home);

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

afterAll(async () => {
  restoreHome(saved);
  fs.rmSync(home, { recursive: true, force: true });
  fs.rmSync(work, { recursive: true, force: true });
});

interface Details {
  model: string;
  random: boolean;
  mode: string;
  images: { imgId: string; file: string; prompt: string; similarity: number; picked?: string; labels: { label: string; bank: string; score: number }[] }[];
}

const readDetails = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8')) as Details;

/** Cosine of each prompt's text embedding (tiny CLIP) with its image's embedding. */
async function trueSimilarities(d: Details): Promise<number[]> {
  const clip = await ClipModel.open('tiny');
  try {
    const encoded = await clip.encodeImages(d.images.map((x) => x.file));
    const texts = await clip.encodeTexts(d.images.map((x) => x.prompt));
    return d.images.map((_, i) => {
      let cos = 0;
      for (let j = 0; j < clip.dim; j++) cos += texts[i * clip.dim + j]! * encoded.embeds[i * clip.dim + j]!;
      return cos;
    });
  } finally {
    clip.close();
  }
}

/** The `count` of `candidates` whose text embedding is most similar to `image` under the tiny CLIP. */
async function mostSimilarTexts(image: string, candidates: string[], count: number): Promise<string[]> {
  const clip = await ClipModel.open('tiny');
  try {
    const { embeds } = await clip.encodeImages([image]);
    const texts = await clip.encodeTexts(candidates);
    const score = (i: number) => {
      let cos = 0;
      for (let j = 0; j < clip.dim; j++) cos += texts[i * clip.dim + j]! * embeds[j]!;
      return cos;
    };
    return candidates.map((c, i) => ({ c, s: score(i) })).sort((a, b) => b.s - a.s).slice(0, count).map((x) => x.c);
  } finally {
    clip.close();
  }
}

describe('img2prompt labels build / interrogate', () => {
  it('builds every bank once (fp32), then finds them cached', async () => {
    const first = await cli(['labels', 'build', ...COMMON]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toContain('RANDOM weights');
    for (const bank of ['artists', 'flavors', 'mediums', 'movements', 'trendings', 'negative']) expect(first.stderr).toMatch(new RegExp(`bank ${bank}: \\d+ labels, built`));
    // Stored as fp32 unless --dtype fp16 is given.
    const [modelFolder] = fs.readdirSync(path.join(home, 'banks'));
    expect((await readBankFile(path.join(home, 'banks', modelFolder!, 'flavors.bank'))).header.dtype).toBe('fp32');
    const again = await cli(['labels', 'build', ...COMMON]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).not.toContain('built');
    expect(again.stderr).toMatch(/bank flavors: 40 labels, cached/);
  });

  it('fast: a prompts CSV for the readable images, the broken one reported, details that hold the true similarities', async () => {
    const out = path.join(work, 'fast.csv');
    const details = path.join(work, 'fast.json');
    const r = await cli(['interrogate', images, ...COMMON, '--mode', 'fast', '-o', out, '--details', details]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(path.join(images, 'broken.png'));
    expect(r.stderr).toContain(`1 of 8 images could not be read; they have no row (listed in ${out}.errors.txt)`);
    expect(fs.readFileSync(`${out}.errors.txt`, 'utf8')).toMatch(new RegExp(`^${path.join(images, 'broken.png')}\t[^\n]+\n$`));

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
    expect((await cli(['interrogate', images, ...COMMON, '--mode', 'fast', '-o', plain])).code).toBe(1);
    expect(fs.readFileSync(plain, 'utf8')).toBe(fs.readFileSync(out, 'utf8'));

    // The prompts CSV feeds `embed`, which writes a submission that validates.
    const sub = path.join(work, 'fast-sub.csv');
    const e = await cli(['embed', '--prompts', out, '-o', sub]);
    expect(e.code, e.stderr).toBe(0);
    const report = await validateSubmission(sub, { imageIds: SAMPLE_IDS });
    expect(report.problems).toEqual([]);
  });

  it('classic: "medium by artist, trending, movement, flavors" from the lists', async () => {
    const out = path.join(work, 'classic.csv');
    const r = await cli(['interrogate', path.join(images, `${SAMPLE_IDS[0]}.png`), path.join(images, `${SAMPLE_IDS[1]}.png`), ...COMMON, '--mode', 'classic', '-o', out]);
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

  it('best: the most similar of its candidates, never below fast; negative: a chain of the least similar labels', async () => {
    const two = [path.join(images, `${SAMPLE_IDS[2]}.png`), path.join(images, `${SAMPLE_IDS[3]}.png`)];
    const run = async (mode: string, extra: string[] = []) => {
      const out = path.join(work, `${mode}${extra.join('')}.csv`);
      const details = path.join(work, `${mode}${extra.join('')}.json`);
      const r = await cli(['interrogate', ...two, ...COMMON, '--mode', mode, '-o', out, '--details', details, '--shortlist', '100', ...extra]);
      expect(r.code, r.stderr).toBe(0);
      return { rows: readPromptsCsv(out), d: readDetails(details) };
    };
    const fast = await run('fast');
    const best = await run('best');
    const negative = await run('negative');
    // The uncached chain (every candidate encoded in full) composes the same prompts.
    expect((await run('best', ['--chain-cache', 'off'])).d.images.map((x) => x.prompt)).toEqual(best.d.images.map((x) => x.prompt));
    const flavorsOrNegative = new Set([...lists.flavors!, ...lists.negative!]);
    for (const { rows, d } of [best, negative]) {
      expect((await rows).map((x) => x.imgId)).toEqual([SAMPLE_IDS[2], SAMPLE_IDS[3]]);
      expect(d.images.map((x) => x.prompt)).toEqual((await rows).map((x) => x.prompt));
      const truth = await trueSimilarities(d);
      d.images.forEach((x, i) => expect(x.similarity).toBeCloseTo(truth[i]!, 4));
    }
    best.d.images.forEach((x, i) => {
      expect(['classic', 'fast', 'chain']).toContain(x.picked);
      expect(x.similarity).toBeGreaterThanOrEqual(fast.d.images[i]!.similarity - 1e-5);
    });
    negative.d.images.forEach((x) => {
      expect(x.labels.length).toBeGreaterThan(0);
      expect(x.prompt).toBe(x.labels.map((l) => l.label).join(', '));
      for (const l of x.labels) expect(flavorsOrNegative.has(l.label), l.label).toBe(true);
      // The chain opened with the least similar label alone and only kept what lowered similarity further.
      expect(x.similarity).toBeLessThanOrEqual(x.labels[0]!.score + 1e-5);
    });
  });

  it('--labels takes one file or folder per use, repeatable, before or after the images', async () => {
    // Extra labels chosen to be the most similar of 600 made-up phrases to two of the images, so fast
    // mode must put them into those prompts if the lists reach the interrogator.
    const first = path.join(images, `${SAMPLE_IDS[0]}.png`);
    const second = path.join(images, `${SAMPLE_IDS[1]}.png`);
    const phrases = Array.from({ length: 600 }, (_, i) => `zyx ${i} quorble`);
    const [forFirst] = await mostSimilarTexts(first, phrases, 1);
    // (Random weights make the images alike, so the second gets the best phrase other than the first's.)
    const [forSecond] = await mostSimilarTexts(second, phrases.filter((p) => p !== forFirst), 1);
    const file = path.join(work, 'mine.txt');
    fs.writeFileSync(file, `${forFirst}\nzyx plain label\n`);
    const dir = path.join(work, 'extra-lists');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'a.txt'), 'zyx other one\n');
    fs.writeFileSync(path.join(dir, 'b.txt'), `${forSecond}\n`);
    fs.writeFileSync(path.join(dir, 'README.md'), 'not a list\n');

    const out = path.join(work, 'extras.csv');
    const details = path.join(work, 'extras.json');
    // `--labels FILE` right before the image folder: the folder must stay an input.
    const r = await cli(['interrogate', '--labels', file, images, '--labels', dir, ...COMMON, '--mode', 'fast', '-o', out, '--details', details]);
    expect(r.code, r.stderr).toBe(1); // only for the broken image
    expect(r.stderr).toContain('1 of 8 images could not be read');
    for (const bank of ['extra-mine: 2 labels', 'extra-a: 1 labels', 'extra-b: 1 labels']) expect(r.stderr).toContain(`bank ${bank}, built`);
    expect(r.stderr).not.toContain('extra-readme');
    expect((await readPromptsCsv(out)).map((x) => x.imgId)).toEqual(SAMPLE_IDS);
    const d = readDetails(details);
    const labelsOf = (i: number) => d.images[i]!.labels.map((l) => `${l.bank}:${l.label}`);
    expect(labelsOf(0)).toContain(`extra-mine:${forFirst}`);
    expect(labelsOf(1)).toContain(`extra-b:${forSecond}`);

    // labels build takes the same option; the banks are then cached.
    const b = await cli(['labels', 'build', ...COMMON, '--labels', file, '--labels', dir]);
    expect(b.code, b.stderr).toBe(0);
    expect(b.stderr).toContain('bank extra-mine: 2 labels, cached');
    expect(b.stderr).toContain('bank extra-b: 1 labels, cached');
  });

  it('refuses an unknown mode and a folder without images, leaving no output', async () => {
    const out = path.join(work, 'never.csv');
    const bad = await cli(['interrogate', images, ...COMMON, '--mode', 'fastest', '-o', out]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/fastest/);
    const empty = path.join(work, 'empty');
    fs.mkdirSync(empty);
    const none = await cli(['interrogate', empty, ...COMMON, '-o', out]);
    expect(none.code).not.toBe(0);
    expect(none.stderr).toContain('no image files found');
    expect(fs.existsSync(out)).toBe(false);
  });
});

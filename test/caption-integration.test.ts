// The captioner inside the product: the caption head of the CLIP Interrogator (every prompt starts with
// the image's caption and the modes compose after it, as the Interrogator does when handed those
// captions) and predict's captioner member (the caption embedded by MiniLM), with --caption-model on
// the CLI and fit-weights learning its weight. A random tiny CLIP and a random tiny BLIP: their words
// mean nothing; the tests check the plumbing against the parts run by hand, not caption quality.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Captioner, InterrogateEngine, PredictEngine, installRandomCaptioner } from '../src/index.js';
import { MiniLMTextSide } from '../src/predict/minilm-text-side.js';
import { runCli } from './helpers/cli.js';
import { asset, KAGGLE_SAMPLE, tempDir } from './helpers/paths.js';
import { copyKaggleImages, restoreHome, useTinyClipHome, writeSmallBankAndLabels } from './helpers/tiny-clip-home.js';

const home = tempDir('img2prompt-interrogate-caption-home-');
const work = tempDir('img2prompt-interrogate-caption-work-');
const images = path.join(work, 'images');
let saved: string | undefined;
let labelsDir: string;
let bankFile: string;
let files: string[];
const CAPTION = { numBeams: 2, maxLength: 12, minLength: 3 };

beforeAll(async () => {
  saved = await useTinyClipHome(home, 7);
  await installRandomCaptioner({ arch: 'blip-tiny', seed: 4, name: 'blip-t', tokenizerDir: asset('tokenizers', 'minilm') });
  copyKaggleImages(images);
  ({ labelsDir, bankFile } = writeSmallBankAndLabels(work));
  files = fs.readdirSync(images).sort().map((f) => path.join(images, f)).slice(0, 4);
}, 600_000);

afterAll(() => {
  restoreHome(saved);
  fs.rmSync(home, { recursive: true, force: true });
  fs.rmSync(work, { recursive: true, force: true });
});

describe('interrogate with a captioner', () => {
  it('heads every prompt with the image caption, composing the modes as the Interrogator does with those captions', async () => {
    const captioner = await Captioner.open({ model: 'blip-t' });
    const captions: string[] = [];
    for await (const c of captioner.run(files, CAPTION)) captions.push(c.caption!);
    captioner.close();
    expect(captions.every((c) => c.trim() !== '')).toBe(true);

    const engine = await InterrogateEngine.open({ model: 'tiny', labelsDir, captionModel: 'blip-t' });
    try {
      expect(engine.captioner?.modelId).toMatch(/^blip-t@[0-9a-f]{16}$/);
      const encoded = await engine.clip.encodeImages(files);
      for (const mode of ['fast', 'classic'] as const) {
        const results = [];
        for await (const r of engine.run(files, { mode, batchSize: 3, caption: CAPTION })) results.push(r);
        expect(results.map((r) => r.caption)).toEqual(captions);
        const direct = await engine.interrogator.interrogate(encoded.embeds, files.length, { mode, caption: captions });
        expect(results.map((r) => r.prompt)).toEqual(direct.map((r) => r.prompt));
        // fast: the caption comes first; classic drops a medium the caption opens with, so it starts with the caption too.
        results.forEach((r, i) => expect(r.prompt!.startsWith(captions[i]!)).toBe(true));
      }
    } finally {
      engine.close();
    }
  });

  it('refuses caption options without a captioner, and a captioner that is not installed names the fix', async () => {
    const engine = await InterrogateEngine.open({ model: 'tiny', labelsDir });
    try {
      expect(() => engine.run(files, { caption: { numBeams: 2 } })).toThrow(
        new TypeError('InterrogateEngine.run(): option "caption" cannot be given to an engine without a captioner (open it with captionModel)'),
      );
    } finally {
      engine.close();
    }
    await expect(InterrogateEngine.open({ model: 'tiny', labelsDir, captionModel: 'blip-nope' })).rejects.toThrow(/model "blip-nope" is not installed: run `img2prompt models pull blip-nope`/);
  });

  it('img2prompt interrogate --caption-model writes captioned prompts and the caption in the details', () => {
    const out = path.join(work, 'prompts.csv');
    const details = path.join(work, 'details.json');
    const r = runCli(['interrogate', ...files, '--model', 'tiny', '--labels-dir', labelsDir, '--caption-model', 'blip-t', '-o', out, '--details', details], home);
    expect(r.stderr).toContain('captioner blip-t@');
    expect(r.code).toBe(0);
    const json = JSON.parse(fs.readFileSync(details, 'utf8')) as { images: { caption: string; prompt: string }[] };
    expect(json.images).toHaveLength(files.length);
    for (const img of json.images) expect(img.prompt.startsWith(img.caption)).toBe(true);
    const none = runCli(['interrogate', ...files, '--model', 'tiny', '--labels-dir', labelsDir, '--caption-model', 'none', '-o', out, '--details', details], home);
    expect(none.code).toBe(0);
    expect((JSON.parse(fs.readFileSync(details, 'utf8')) as { images: object[] }).images[0]).not.toHaveProperty('caption');
  });
});

describe('predict with a captioner', () => {
  it('adds the captioner member (the caption embedded by MiniLM) and heads the interrogator prompts with the caption', async () => {
    const captioner = await Captioner.open({ model: 'blip-t' });
    const captions: string[] = [];
    for await (const c of captioner.run(files, CAPTION)) captions.push(c.caption!);
    captioner.close();
    const minilm = await MiniLMTextSide.open();
    const embedded = await minilm.embedder.embed(captions);
    minilm.close();

    const notices: string[] = [];
    const engine = await PredictEngine.open({
      model: 'tiny', promptsBank: [bankFile], labelsDir, captionModel: 'blip-t', caption: CAPTION, onNotice: (m) => notices.push(m),
    });
    try {
      expect(engine.members).toEqual(['knn', 'map', 'interrogator', 'captioner']);
      expect(notices.some((m) => m.includes('captioner blip-t@') && m.includes('RANDOM'))).toBe(true);
      const results = [];
      for await (const r of engine.run(files, { batchSize: 3 })) results.push(r);
      expect(results.map((r) => r.caption)).toEqual(captions);
      results.forEach((r, i) => {
        const v = r.members.captioner!;
        let dot = 0;
        for (let d = 0; d < 384; d++) dot += v[d]! * embedded[i * 384 + d]!;
        expect(dot).toBeGreaterThan(0.99999);
        expect(r.prompt!.startsWith(captions[i]!)).toBe(true);
      });
    } finally {
      engine.close();
    }
    await expect(PredictEngine.open({ model: 'tiny', promptsBank: [bankFile], members: ['knn'], caption: CAPTION })).rejects.toThrow(
      new TypeError('PredictEngine.open(): option "caption" cannot be given without a captionModel'),
    );
  });

  it('img2prompt predict --caption-model writes --captions-out, and fit-weights learns the captioner weight', () => {
    const out = path.join(work, 'sub.csv');
    const captionsOut = path.join(work, 'captions.csv');
    const r = runCli(['predict', ...files, '--model', 'tiny', '--prompts-bank', bankFile, '--members', 'knn,captioner', '--caption-model', 'blip-t', '-o', out, '--captions-out', captionsOut], home);
    expect(r.stderr).toContain('members: knn, captioner');
    expect(r.code).toBe(0);
    const rows = fs.readFileSync(captionsOut, 'utf8').trimEnd().split('\n');
    expect(rows[0]).toBe('imgId,caption');
    expect(rows.slice(1).map((l) => l.split(',')[0])).toEqual(files.map((f) => path.basename(f, '.png')));
    expect(runCli(['predict', ...files, '--model', 'tiny', '-o', out, '--captions-out', captionsOut], home).stderr).toContain('--captions-out needs a --caption-model');

    const weights = path.join(work, 'weights.json');
    const fit = runCli(['fit-weights', '--images', images, '--truth', path.join(KAGGLE_SAMPLE, 'prompts.csv'), '--folds', '3', '--model', 'tiny', '--prompts-bank', bankFile,
      '--members', 'knn,captioner', '--caption-model', 'blip-t', '-o', weights], home);
    expect(fit.code).toBe(0);
    expect(fit.stdout).toMatch(/^fold\s+images\s+knn\s+captioner\s+ensemble$/m);
    expect(Object.keys(JSON.parse(fs.readFileSync(weights, 'utf8')).members)).toEqual(['knn', 'captioner']);
  });
});

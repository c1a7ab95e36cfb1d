// interrogate() from the package entry point: a random tiny CLIP, 40-line label lists, the Kaggle
// images with an unreadable file placed among them.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { interrogate, InterrogateEngine, Img2PromptError, type InterrogatedImage } from '../src/index.js';
import { DEFAULT_INTERROGATE_MODEL } from '../src/interrogate/interrogate.js';
import { DEFAULT_CLIP_MODEL } from '../src/predict/predict.js';
import { asset, tempDir } from './helpers/paths.js';
import { copyKaggleImages, restoreHome, useTinyClipHome } from './helpers/tiny-clip-home.js';

const home = tempDir('img2prompt-interrogate-api-home-');
const work = tempDir('img2prompt-interrogate-api-work-');
const imagesDir = path.join(work, 'images');
const labelsDir = path.join(work, 'labels');
let saved: string | undefined;
let files: string[] = [];

beforeAll(async () => {
  saved = await useTinyClipHome(home, 11);
  copyKaggleImages(imagesDir);
  fs.mkdirSync(labelsDir);
  for (const f of ['artists', 'flavors', 'mediums', 'movements', 'sites', 'negative']) {
    const all = fs.readFileSync(asset('labels', `${f}.txt`), 'utf8').split('\n').filter((l) => l.trim() !== '');
    fs.writeFileSync(path.join(labelsDir, `${f}.txt`), all.slice(0, 40).join('\n') + '\n');
  }
  const broken = path.join(work, 'broken.png');
  fs.writeFileSync(broken, 'not a png');
  const good = fs.readdirSync(imagesDir).sort().map((f) => path.join(imagesDir, f));
  files = [...good.slice(0, 3), broken, ...good.slice(3)];
});

afterAll(() => {
  restoreHome(saved);
  fs.rmSync(home, { recursive: true, force: true });
  fs.rmSync(work, { recursive: true, force: true });
});

async function collect(gen: AsyncIterable<InterrogatedImage>): Promise<InterrogatedImage[]> {
  const out: InterrogatedImage[] = [];
  for await (const r of gen) out.push(r);
  return out;
}

describe('interrogate()', () => {
  it('streams one result per input, in order, the unreadable one with its reason; prompts match the Interrogator', async () => {
    const progress: string[] = [];
    const results = await collect(
      interrogate(files, { model: 'tiny', labelsDir, mode: 'fast', batchSize: 3, onProgress: (d, t, phase) => progress.push(`${phase} ${d}/${t}`) }),
    );
    expect(results.map((r) => r.index)).toEqual(files.map((_, i) => i));
    expect(results.map((r) => r.file)).toEqual(files);
    expect(results.map((r) => r.id)).toEqual(files.map((f) => path.basename(f, '.png')));
    const broken = results[3]!;
    expect(broken).toMatchObject({ prompt: null, labels: [], mode: 'fast' });
    expect(broken.failure).toBeTruthy();
    expect(broken.similarity).toBeNaN();
    expect(progress.filter((p) => p.startsWith('interrogating'))).toEqual(files.map((_, i) => `interrogating ${i + 1}/${files.length}`));
    expect(progress).toContain(`encoding images ${files.length}/${files.length}`);

    // The same prompts and similarities as encoding the readable images and asking the Interrogator directly.
    const engine = await InterrogateEngine.open({ model: 'tiny', labelsDir });
    try {
      const readable = files.filter((_, i) => i !== 3);
      const encoded = await engine.clip.encodeImages(readable);
      const direct = await engine.interrogator.interrogate(encoded.embeds, readable.length, { mode: 'fast' });
      const ok = results.filter((r) => r.failure === undefined);
      expect(ok.map((r) => r.prompt)).toEqual(direct.map((r) => r.prompt));
      ok.forEach((r, i) => {
        expect(r.similarity).toBeCloseTo(direct[i]!.similarity, 6);
        expect(r.prompt).toBe(r.labels.map((l) => l.label).join(', '));
      });
      // A similarity is the cosine of the prompt's text embedding with the image's.
      const texts = await engine.clip.encodeTexts(ok.map((r) => r.prompt!));
      ok.forEach((r, i) => {
        let cos = 0;
        for (let d = 0; d < engine.clip.dim; d++) cos += texts[i * engine.clip.dim + d]! * encoded.embeds[i * engine.clip.dim + d]!;
        expect(r.similarity).toBeCloseTo(cos, 4);
      });
    } finally {
      engine.close();
    }
  });

  it('reuses an opened engine (leaving it open), runs every mode, and skips scoring when asked', async () => {
    const engine = await InterrogateEngine.open({ model: 'tiny', labelsDir });
    try {
      const two = [files[0]!, files[4]!];
      const encoded = await engine.clip.encodeImages(two);
      for (const mode of ['fast', 'classic', 'best', 'negative'] as const) {
        const results = await collect(interrogate(two, { engine, mode, shortlist: 50 }));
        const direct = await engine.interrogator.interrogate(encoded.embeds, 2, { mode, shortlist: 50 });
        expect(results.map((r) => r.prompt), mode).toEqual(direct.map((r) => r.prompt));
        expect(results.every((r) => r.mode === mode)).toBe(true);
        if (mode === 'best') for (const r of results) expect(['classic', 'fast', 'chain']).toContain(r.picked);
      }
      const unscored = await collect(interrogate(two, { engine, mode: 'classic', score: false }));
      expect(unscored.every((r) => Number.isNaN(r.similarity))).toBe(true);
      const scored = await collect(interrogate(two, { engine, mode: 'classic' }));
      expect(unscored.map((r) => r.prompt)).toEqual(scored.map((r) => r.prompt));
      // Still open: the model encodes after all those runs.
      expect((await engine.clip.encodeTexts(['still open'])).length).toBe(engine.clip.dim);
    } finally {
      engine.close();
    }
  });

  it('reads images with the EXIF choice and the engine\'s image processor', async () => {
    const rotated = [asset('images', 'pillow-hopper_orientation_6.jpg')];
    const engine = await InterrogateEngine.open({ model: 'tiny', labelsDir, imageProcessor: 'hf' });
    try {
      expect(engine.clip.imageProcessor).toBe('hf');
      for (const exif of ['apply', 'ignore'] as const) {
        const [r] = await collect(interrogate(rotated, { engine, mode: 'fast', exif }));
        const encoded = await engine.clip.encodeImages(rotated, { exif });
        const [direct] = await engine.interrogator.interrogate(encoded.embeds, 1, { mode: 'fast' });
        expect(r!.prompt, exif).toBe(direct!.prompt);
        const text = await engine.clip.encodeTexts([r!.prompt!]);
        const cos = text.reduce((sum, v, d) => sum + v * encoded.embeds[d]!, 0);
        expect(r!.similarity).toBeCloseTo(cos, 5);
      }
      const [apply, ignore] = await Promise.all((['apply', 'ignore'] as const).map((exif) => engine.clip.encodeImages(rotated, { exif })));
      expect(apply.embeds.some((v, i) => v !== ignore.embeds[i])).toBe(true);
    } finally {
      engine.close();
    }
  });

  it('refuses bad options (before opening anything) and a missing model', async () => {
    const first = (options: Parameters<typeof interrogate>[1]) => interrogate(files, options).next();
    await expect(first({ model: 'tiny', labelsDir, mode: 'fastest' as never })).rejects.toThrow(
      new RangeError('interrogate(): Expected one of "fast", "classic", "best", "negative" for mode but received "fastest"'),
    );
    await expect(first({ model: 'tiny', labelsDir, batchSize: 0 })).rejects.toThrow(new RangeError('interrogate(): Expected an integer >= 1 for batchSize but received 0'));
    await expect(first({ model: 'tiny', labelsDir, minFlavors: -1 })).rejects.toThrow(new RangeError('interrogate(): Expected an integer >= 0 for minFlavors but received -1'));
    await expect(first({ model: 'tiny', labelsDir, exif: 'rotate' as never })).rejects.toThrow(
      new RangeError('interrogate(): Expected one of "apply", "ignore" for exif but received "rotate"'),
    );
    await expect(first({ model: 'tiny', labelsDir, modle: 'x' } as never)).rejects.toThrow(new TypeError('interrogate(): unknown option "modle" (did you mean "mode"?)'));
    await expect(first({ model: 'tiny', labelsDir, chainCache: 'yes' as never })).rejects.toThrow(
      new TypeError('interrogate(): Expected true or false for chainCache but received "yes" of type string'),
    );
    await expect(first({ model: 'no-such-model', labelsDir })).rejects.toBeInstanceOf(Img2PromptError);
  });

  it('defaults to the model predict uses', () => {
    expect(DEFAULT_INTERROGATE_MODEL).toBe(DEFAULT_CLIP_MODEL);
  });
});

// Issue 10, input side, as a user meets it: predict, interrogate, embed-images, fit-weights and validate
// --images on folders holding things named like images that are not (a FIFO, a folder, dangling and
// looping links), SVG files, and file names that cannot be image ids. Every run has a deadline: a FIFO
// used to hang these commands forever, and a regression must fail, not hang the suite.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readNpy } from '../src/util/npy.js';
import { readSubmission } from '../src/submission/submission-csv.js';
import { PredictEngine, type PredictedImage } from '../src/predict/predict.js';
import { interrogate } from '../src/interrogate/interrogate.js';
import { asset, KAGGLE_SAMPLE, tempDir } from './helpers/paths.js';
import { runCliInProcess, type CliResult } from './helpers/cli.js';
import { restoreHome, useTinyClipHome } from './helpers/tiny-clip-home.js';

const home = tempDir('img2prompt-inputs-home-');
const work = tempDir('img2prompt-inputs-work-');
const bankFile = path.join(work, 'bank.txt');
const labelsDir = path.join(work, 'labels');
const KAGGLE = path.join(KAGGLE_SAMPLE, 'images');
const [IMG_A, IMG_B] = ['20057f34d', '227ef0887'];
let saved: string | undefined;

/** Long enough for a slow shared machine, short enough that a hung run fails the test before vitest's own timeout. */
const DEADLINE_MS = 100_000;
const cli = (args: string[]): Promise<CliResult> => runCliInProcess(args, home, { timeoutMs: DEADLINE_MS });
const COMMON = ['--model', 'tiny', '--prompts-bank', bankFile, '--labels-dir', labelsDir];

function lines(text: string, n: number): string[] {
  return text.split('\n').filter((l) => l.trim() !== '').slice(0, n);
}

/** A fresh folder under `work` holding copies of the named Kaggle images (`{ 'a.png': IMG_A }`). */
function folder(name: string, images: Record<string, string>): string {
  const dir = path.join(work, name);
  fs.mkdirSync(dir);
  for (const [file, id] of Object.entries(images)) fs.copyFileSync(path.join(KAGGLE, `${id}.png`), path.join(dir, file));
  return dir;
}

beforeAll(async () => {
  saved = await useTinyClipHome(home, 11);
  fs.writeFileSync(bankFile, lines(fs.readFileSync(asset('eval', 'prompts', 'krea-open-prompts-1k.prompts.txt'), 'utf8'), 60).join('\n') + '\n');
  fs.mkdirSync(labelsDir);
  for (const f of ['artists', 'flavors', 'mediums', 'movements', 'sites', 'negative']) {
    fs.writeFileSync(path.join(labelsDir, `${f}.txt`), lines(fs.readFileSync(asset('labels', `${f}.txt`), 'utf8'), 30).join('\n') + '\n');
  }
});

afterAll(async () => {
  restoreHome(saved);
  fs.rmSync(home, { recursive: true, force: true });
  fs.rmSync(work, { recursive: true, force: true });
});

describe('entries named like images that are not regular files', () => {
  let dir: string;
  const NOT_IMAGES: Record<string, string> = {
    'dangling.png': 'is a dangling symbolic link (its target gone.png does not exist)',
    'loop1.png': 'is a symbolic link loop (too many levels of symbolic links)',
    'loop2.png': 'is a symbolic link loop (too many levels of symbolic links)',
    'pipe.png': 'is a named pipe (FIFO), not a regular file: not read',
    'x.png': 'is a directory, not an image file',
  };
  beforeAll(async () => {
    dir = folder('not-images', { [`${IMG_A}.png`]: IMG_A, [`${IMG_B}.png`]: IMG_B });
    fs.mkdirSync(path.join(dir, 'x.png'));
    fs.symlinkSync('gone.png', path.join(dir, 'dangling.png'));
    fs.symlinkSync('loop2.png', path.join(dir, 'loop1.png'));
    fs.symlinkSync('loop1.png', path.join(dir, 'loop2.png'));
    expect(spawnSync('mkfifo', [path.join(dir, 'pipe.png')]).status).toBe(0);
  });
  const listed = (stderr: string) => Object.keys(NOT_IMAGES).map((f) => `${path.join(dir, f)}: ${NOT_IMAGES[f]}`).filter((l) => stderr.includes(l));

  it('predict: a submission for the real images only, the rest listed with reasons, and validate --images agrees', async () => {
    const out = path.join(work, 'not-images.csv');
    const r = await cli(['predict', dir, '-o', out, ...COMMON, '--members', 'knn,map']);
    expect(r.code, r.stderr).toBe(1);
    expect(listed(r.stderr)).toHaveLength(5);
    expect(r.stderr).toContain('img2prompt: 5 inputs named like images are not image files; they were not read and have no row');
    expect((await readSubmission(out)).ids).toEqual([IMG_A, IMG_B]);
    const errors = fs.readFileSync(`${out}.errors.txt`, 'utf8').trimEnd().split('\n');
    expect(errors.sort()).toEqual(Object.entries(NOT_IMAGES).map(([f, reason]) => `${path.join(dir, f)}\t${reason}`).sort());
    // validate --images counts the same images: this submission is exactly right for the folder.
    const v = await cli(['validate', out, '--images', dir]);
    expect(v.code, v.stdout + v.stderr).toBe(0);
    expect(v.stdout).toContain('valid submission (2 images, 768 rows)');
  });

  it('embed-images and interrogate finish too, naming each entry with its reason', async () => {
    const npy = path.join(work, 'not-images.npy');
    const e = await cli(['embed-images', dir, '--model', 'tiny', '-o', npy]);
    expect(e.code, e.stderr).toBe(1);
    expect(listed(e.stderr)).toHaveLength(5);
    expect(e.stderr).toContain(`img2prompt: 5 inputs named like images are not image files; they were not read and have no row (listed in ${npy}.errors.txt)`);
    expect(fs.readFileSync(`${npy}.errors.txt`, 'utf8').trimEnd().split('\n')).toHaveLength(5);
    expect(fs.readFileSync(path.join(work, 'not-images.ids.txt'), 'utf8')).toBe(`${IMG_A}\n${IMG_B}\n`);

    const csv = path.join(work, 'not-images-prompts.csv');
    const i = await cli(['interrogate', dir, '--model', 'tiny', '--labels-dir', labelsDir, '-o', csv]);
    expect(i.code, i.stderr).toBe(1);
    expect(listed(i.stderr)).toHaveLength(5);
    expect(fs.readFileSync(csv, 'utf8').trimEnd().split('\n').slice(1).map((l) => l.split(',')[0])).toEqual([IMG_A, IMG_B]);
  });
});

describe('one id rule for every command, checked before any work', () => {
  let dir: string;
  let message: string;
  beforeAll(async () => {
    // "a.jpg" holds a PNG: the decoder goes by content, so only the names are wrong here.
    dir = folder('bad-names', { 'a.png': IMG_A, 'a.jpg': IMG_B, 'b c.png': IMG_A, 'd,e.png': IMG_B, 'fine.png': IMG_A, 'new\nline.png': IMG_B });
    const q = (f: string) => JSON.stringify(path.join(dir, f));
    message =
      'img2prompt: image file names that cannot be image ids (an id is the file name without its extension; ids must be unique, ' +
      'with no whitespace, commas, quotes or control characters), rename them: ' +
      `${q('b c.png')} (id contains whitespace); ${q('d,e.png')} (id contains a comma); ${q('new\nline.png')} (id contains whitespace); ` +
      `${q('a.jpg')} and ${q('a.png')} share the id "a"\n`;
  });

  it('predict, interrogate, embed-images, fit-weights and validate --images refuse with the same line, listing every file', async () => {
    const truth = path.join(work, 'truth.csv');
    fs.writeFileSync(truth, 'imgId,prompt\nfine,a cat\n');
    const runs: Record<string, string[]> = {
      // A model that does not exist: were the names checked after opening it, that would be the error.
      predict: ['predict', dir, '-o', path.join(work, 'never.csv'), '--model', 'no-such-model'],
      interrogate: ['interrogate', dir, '-o', path.join(work, 'never-prompts.csv'), '--model', 'no-such-model'],
      'embed-images': ['embed-images', dir, '-o', path.join(work, 'never.npy'), '--model', 'no-such-model'],
      'fit-weights': ['fit-weights', '--images', dir, '--truth', truth, '--folds', '2', '-o', path.join(work, 'never.json'), '--model', 'no-such-model'],
      validate: ['validate', path.join(work, 'no-such-submission.csv'), '--images', dir],
    };
    for (const [name, args] of Object.entries(runs)) {
      const r = await cli(args);
      expect(r.code, `${name}: ${r.stderr}`).toBe(1);
      expect(r.stderr, name).toBe(message);
      expect(r.stdout, name).toBe('');
    }
    for (const f of ['never.csv', 'never-prompts.csv', 'never.npy', 'never.ids.txt', 'never.json']) expect(fs.existsSync(path.join(work, f)), f).toBe(false);
  });

  it('embed-images no longer writes duplicate ids, nor one split over two lines, and interrogate refuses before encoding', async () => {
    const out = path.join(work, 'dups.npy');
    const e = await cli(['embed-images', dir, '--model', 'tiny', '-o', out]);
    expect(e.code).toBe(1);
    expect(e.stderr).toBe(message); // the RANDOM-weights warning would show the model had been opened
    expect(fs.existsSync(out)).toBe(false);

    // A file given twice is a clash too, named as such.
    const twice = path.join(dir, 'fine.png');
    const t = await cli(['embed-images', twice, twice, '--model', 'tiny', '-o', out]);
    expect(t.code).toBe(1);
    expect(t.stderr).toContain(`${JSON.stringify(twice)} and ${JSON.stringify(twice)} share the id "fine" (a file given twice)`);

    const i = await cli(['interrogate', dir, ...COMMON.slice(0, 2), '--labels-dir', labelsDir, '-o', path.join(work, 'dups.csv')]);
    expect(i.code).toBe(1);
    expect(i.stderr).toBe(message);
  });

  it('the engine needs unique ids only: a name with a space is fine through the API, a clash is refused', async () => {
    const engine = await PredictEngine.open({ model: 'tiny', promptsBank: [bankFile], members: ['knn'] });
    try {
      const results: PredictedImage[] = [];
      for await (const r of engine.run([path.join(dir, 'b c.png'), path.join(dir, 'fine.png')])) results.push(r);
      expect(results.map((r) => [r.id, r.failure])).toEqual([
        ['b c', undefined],
        ['fine', undefined],
      ]);
      // Refused by run() itself, before any image is read.
      expect(() => engine.run([path.join(dir, 'a.png'), path.join(dir, 'a.jpg')])).toThrow(
        `image ids must be unique (an id is the file name without its extension): ${JSON.stringify(path.join(dir, 'a.png'))} and ${JSON.stringify(path.join(dir, 'a.jpg'))} share the id "a"`,
      );
    } finally {
      engine.close();
    }
    const interrogated: string[] = [];
    for await (const r of interrogate([path.join(dir, 'b c.png')], { model: 'tiny', labelsDir })) interrogated.push(r.id);
    expect(interrogated).toEqual(['b c']);
  });
});

describe('SVG files: refused unless --allow-svg, and validate --images counts them the same way', () => {
  it('embed-images and predict leave a folder\'s .svg out by default and read it with --allow-svg', async () => {
    const dir = folder('with-svg', { [`${IMG_A}.png`]: IMG_A });
    fs.writeFileSync(path.join(dir, 'drawing.svg'), '<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><circle cx="4" cy="4" r="3" fill="blue"/></svg>\n');
    const npy = path.join(work, 'svg.npy');
    const plain = await cli(['embed-images', dir, '--model', 'tiny', '-o', npy]);
    expect(plain.code, plain.stderr).toBe(0);
    expect((await readNpy(npy)).shape).toEqual([1, 32]);
    const allowed = await cli(['embed-images', dir, '--model', 'tiny', '-o', npy, '--allow-svg']);
    expect(allowed.code, allowed.stderr).toBe(0);
    expect((await readNpy(npy)).shape).toEqual([2, 32]);
    expect(fs.readFileSync(path.join(work, 'svg.ids.txt'), 'utf8')).toBe(`${IMG_A}\ndrawing\n`);

    // Named explicitly, without the option, it is a failure with its reason, not a decoded image.
    const explicit = await cli(['embed-images', path.join(dir, 'drawing.svg'), path.join(dir, `${IMG_A}.png`), '--model', 'tiny', '-o', npy]);
    expect(explicit.code).toBe(1);
    expect(explicit.stderr).toContain(`\n  ${path.join(dir, 'drawing.svg')}: an SVG (vector) image: only raster images are read unless SVG is allowed (--allow-svg, allowSvg)`);

    const out = path.join(work, 'svg.csv');
    const p = await cli(['predict', dir, '-o', out, ...COMMON, '--members', 'knn', '--allow-svg']);
    expect(p.code, p.stderr).toBe(0);
    expect((await cli(['validate', out, '--images', dir, '--allow-svg'])).code).toBe(0);
    expect((await cli(['validate', out, '--images', dir])).stdout).toContain('unexpected image "drawing"');
  });
});

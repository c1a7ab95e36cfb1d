// The main job end to end on the 7 Kaggle sample images, with a random tiny CLIP, the real MiniLM, a
// 200-prompt bank and 40-line label lists (to stay fast): predict, validate, score, unreadable images,
// kill and resume, fit-map and fit-weights.
import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClipModel } from '../src/clip/model.js';
import { readSubmission } from '../src/submission/submission-csv.js';
import { validateSubmission } from '../src/submission/validate.js';
import { readPromptsCsv } from '../src/submission/prompts-csv.js';
import { score } from '../src/submission/score.js';
import { MiniLMTextSide } from '../src/predict/minilm-text-side.js';
import { loadPromptBank } from '../src/predict/prompt-bank-cache.js';
import { LinearMap } from '../src/predict/linear-map.js';
import { predict, type PredictedImage } from '../src/predict/predict.js';
import type { PromptBank } from '../src/predict/prompt-bank.js';
import { asset, KAGGLE_SAMPLE, tempDir } from './helpers/paths.js';
import { copyKaggleImages, restoreHome, useTinyClipHome } from './helpers/tiny-clip-home.js';
import { cosineOf, maxAbsDiff } from './helpers/predict-fakes.js';

const SAMPLE_IDS = ['20057f34d', '227ef0887', '92e911621', 'a4e1c55a9', 'c98f79f71', 'd8edf2e40', 'f27825b2c'];
const TRUTH = path.join(KAGGLE_SAMPLE, 'prompts.csv');
const DIM = 384;

const home = tempDir('img2prompt-predict-home-');
const work = tempDir('img2prompt-predict-work-');
const images = path.join(work, 'images');
const bankFile = path.join(work, 'bank.txt');
const labelsDir = path.join(work, 'labels');
let saved: string | undefined;
let bankPrompts: string[];

/** The options every run shares: the small bank and label lists. */
const COMMON = ['--model', 'tiny', '--prompts-bank', bankFile, '--labels-dir', labelsDir];

function cli(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    env: { ...process.env, IMG2PROMPT_HOME: home, IMG2PROMPT_PROGRESS: '0' },
    encoding: 'utf8',
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function lines(text: string, n: number): string[] {
  return text.split('\n').filter((l) => l.trim() !== '').slice(0, n);
}

async function collect(gen: AsyncGenerator<PredictedImage>): Promise<PredictedImage[]> {
  const out: PredictedImage[] = [];
  for await (const r of gen) out.push(r);
  return out;
}

beforeAll(async () => {
  saved = await useTinyClipHome(home, 3);

  copyKaggleImages(images);
  const prompts = asset('eval', 'prompts');
  bankPrompts = [
    ...lines(fs.readFileSync(path.join(prompts, 'songjein-gpt4-kaggle-style-prompts.txt'), 'utf8'), 100),
    ...lines(fs.readFileSync(path.join(prompts, 'krea-open-prompts-1k.prompts.txt'), 'utf8'), 100),
  ];
  fs.writeFileSync(bankFile, bankPrompts.join('\n') + '\n');
  fs.mkdirSync(labelsDir);
  for (const f of ['artists', 'flavors', 'mediums', 'movements', 'sites', 'negative']) {
    fs.writeFileSync(path.join(labelsDir, `${f}.txt`), lines(fs.readFileSync(asset('labels', `${f}.txt`), 'utf8'), 40).join('\n') + '\n');
  }
});

afterAll(() => {
  restoreHome(saved);
  fs.rmSync(home, { recursive: true, force: true });
  fs.rmSync(work, { recursive: true, force: true });
});

/** The bank as predict sees it (from the cache the first predict built). */
async function openBank(): Promise<PromptBank> {
  const clip = await ClipModel.open('tiny', { towers: ['text'] });
  const minilm = await MiniLMTextSide.open();
  try {
    return (await loadPromptBank(clip, minilm, { files: [bankFile] })).bank;
  } finally {
    clip.close();
    minilm.close();
  }
}

describe('img2prompt predict', () => {
  it('writes a valid submission and readable prompts for the Kaggle sample, which score prints a number for', async () => {
    const out = path.join(work, 'run1', 'submission.csv');
    const promptsOut = path.join(work, 'run1', 'prompts.csv');
    const r = cli(['predict', images, '-o', out, '--prompts-out', promptsOut, ...COMMON]);
    expect(r.stderr).toMatch(/RANDOM weights/);
    expect(r.stderr).toContain('7 images → ');
    expect(r.stderr).toContain('members: knn, map, interrogator');
    expect(r.code).toBe(0);

    const report = await validateSubmission(out, { imageIds: SAMPLE_IDS });
    expect(report).toMatchObject({ valid: true, images: 7, rows: 7 * DIM, warnings: [] });
    // No resume state or error list is left behind by a clean run.
    expect(fs.readdirSync(path.dirname(out)).sort()).toEqual(['prompts.csv', 'submission.csv']);
    // The map fitted on the fly is saved where the next run finds it.
    const maps = fs.readdirSync(path.join(home, 'maps'), { recursive: true }).map(String);
    expect(maps.some((m) => m.endsWith('.json'))).toBe(true);

    // The interrogator's prompts are made of the (small) label lists.
    const prompts = await readPromptsCsv(promptsOut);
    expect(prompts.map((p) => p.imgId)).toEqual(SAMPLE_IDS);
    const labels = new Set(fs.readdirSync(labelsDir).flatMap((f) => lines(fs.readFileSync(path.join(labelsDir, f), 'utf8'), 1000)));
    for (const p of prompts) expect(p.prompt.split(', ').some((piece) => labels.has(piece) || labels.has(piece.replace(/^(inspired )?by /, '')))).toBe(true);

    const s = cli(['score', '--pred', out, '--truth', TRUTH]);
    expect(s.code).toBe(0);
    const mean = Number(/mean cosine: (-?\d\.\d{4}) over 7 images/.exec(s.stdout)?.[1]);
    expect(Number.isFinite(mean)).toBe(true);
    expect(Math.abs(mean)).toBeLessThanOrEqual(1);
  });

  it('streams one result per image through the API; kNN with k=1 returns the nearest prompt\'s own MiniLM vector', async () => {
    const files = SAMPLE_IDS.map((id) => path.join(images, `${id}.png`));
    const results = await collect(predict(files, { model: 'tiny', promptsBank: [bankFile], members: ['knn'], k: 1, temperature: 0, batchSize: 3 }));
    expect(results.map((r) => r.id)).toEqual(SAMPLE_IDS);
    expect(results.map((r) => r.index)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    const bank = await openBank();
    for (const r of results) {
      expect(r.failure).toBeUndefined();
      const i = bank.texts.indexOf(r.prompt!);
      expect(i).toBeGreaterThanOrEqual(0);
      expect(maxAbsDiff(r.vector, bank.minilm.subarray(i * DIM, (i + 1) * DIM))).toBeLessThan(1e-6);
    }
    // Scored against its own prompts, such a submission is perfect: the bank's MiniLM side is the real MiniLM.
    const out = path.join(work, 'knn1.csv');
    const promptsOut = path.join(work, 'knn1.prompts.csv');
    expect(cli(['predict', images, '-o', out, '--prompts-out', promptsOut, '--members', 'knn', '--k', '1', '--temperature', '0', ...COMMON]).code).toBe(0);
    const self = await score(out, promptsOut, async () => (await MiniLMTextSide.open()).embedder);
    expect(self.mean).toBeCloseTo(1, 5);
  });

  it('embeds the interrogator prompt with MiniLM for the interrogator member', async () => {
    const files = SAMPLE_IDS.map((id) => path.join(images, `${id}.png`));
    const results = await collect(predict(files, { model: 'tiny', promptsBank: [bankFile], labelsDir, members: ['interrogator'] }));
    const minilm = await MiniLMTextSide.open();
    const direct = await minilm.embedder.embed(results.map((r) => r.prompt!));
    minilm.close();
    results.forEach((r, i) => {
      expect(Object.keys(r.members)).toEqual(['interrogator']);
      expect(cosineOf(r.vector, direct.subarray(i * DIM, (i + 1) * DIM))).toBeGreaterThan(0.99999);
    });
  });

  it('lists an unreadable image in the errors file, gives it the fallback vector and exits 1', async () => {
    const dir = path.join(work, 'with-broken');
    fs.mkdirSync(dir);
    for (const f of fs.readdirSync(images)) fs.copyFileSync(path.join(images, f), path.join(dir, f));
    fs.writeFileSync(path.join(dir, '0000broken.png'), 'not a png');
    const out = path.join(work, 'broken', 'submission.csv');
    const r = cli(['predict', dir, '-o', out, '--members', 'knn,map', '--batch-size', '3', ...COMMON]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('1 of 8 images could not be read; they got the fallback vector');
    const errors = fs.readFileSync(`${out}.errors.txt`, 'utf8');
    const [line, ...rest] = errors.split('\n');
    expect(rest).toEqual(['']);
    expect(line!.split('\t')[0]).toBe(path.join(dir, '0000broken.png'));
    expect(line!.split('\t')[1]).toMatch(/unsupported image format/);

    const ids = ['0000broken', ...SAMPLE_IDS];
    expect((await validateSubmission(out, { imageIds: ids })).valid).toBe(true);
    const sub = await readSubmission(out);
    expect(sub.ids).toEqual(ids);
    const fallback = (await openBank()).meanTextVector();
    expect(maxAbsDiff(sub.vectors.subarray(0, DIM), fallback)).toBeLessThan(1e-7);
    // The readable images got real predictions, not the fallback.
    for (let i = 1; i < ids.length; i++) expect(maxAbsDiff(sub.vectors.subarray(i * DIM, (i + 1) * DIM), fallback)).toBeGreaterThan(1e-3);
  });

  it('resumes a SIGKILLed run from its checkpoint to a byte-identical submission and prompts file', async () => {
    // 7 images x 4 copies under different names, in batches of 2: enough batches to kill in the middle.
    const dir = path.join(work, 'many');
    fs.mkdirSync(dir);
    for (let c = 0; c < 4; c++) for (const id of SAMPLE_IDS) fs.copyFileSync(path.join(images, `${id}.png`), path.join(dir, `c${c}${id}.png`));
    const total = 28;
    const args = (out: string) => ['predict', dir, '-o', out, '--prompts-out', `${out}.prompts.csv`, '--batch-size', '2', '--gap-images', '4', ...COMMON];

    const ref = path.join(work, 'many-ref.csv');
    expect(cli(args(ref)).code).toBe(0);

    const out = path.join(work, 'many-killed.csv');
    const ckpt = `${out}.ckpt`;
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args(out)], {
      env: { ...process.env, IMG2PROMPT_HOME: home, IMG2PROMPT_PROGRESS: '0' },
      stdio: 'ignore',
    });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    let finishedEarly = false;
    child.once('exit', () => (finishedEarly = !child.killed));
    // Kill as soon as two batches (plus the header line) are on disk.
    while (!finishedEarly) {
      const text = fs.existsSync(ckpt) ? fs.readFileSync(ckpt, 'utf8') : '';
      if (text.split('\n').length - 1 >= 5) {
        child.kill('SIGKILL');
        break;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    await exited;
    expect(finishedEarly).toBe(false);
    expect(child.signalCode).toBe('SIGKILL');
    expect(fs.existsSync(out)).toBe(false);
    const records = fs.readFileSync(ckpt, 'utf8').split('\n').slice(1).filter((l) => l.endsWith('}')).length;
    expect(records).toBeGreaterThanOrEqual(4);
    expect(records).toBeLessThan(total);

    // Resuming with other options is refused, naming what changed, and leaves the checkpoint alone.
    const other = cli([...args(out), '--resume', '--k', '3']);
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/checkpoint belongs to a different run \(option k: 16 → 3\)/);

    const r = cli([...args(out), '--resume']);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`resuming from ${ckpt}: ${records} of ${total} images already done`);
    expect(r.stderr).toContain(`, ${records} from the checkpoint;`);
    expect(fs.readFileSync(out).equals(fs.readFileSync(ref))).toBe(true);
    expect(fs.readFileSync(`${out}.prompts.csv`).equals(fs.readFileSync(`${ref}.prompts.csv`))).toBe(true);
    expect(fs.existsSync(ckpt)).toBe(false);
    expect(fs.existsSync(`${ckpt}.gap.json`)).toBe(false);
  });
});

describe('img2prompt fit-map and fit-weights', () => {
  it('fit-map saves a map for the model and the bank', async () => {
    const file = path.join(work, 'maps', 'map.json');
    const r = cli(['fit-map', '--model', 'tiny', '--prompts-bank', bankFile, '--lambda', '0.1', '-o', file]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/map 32 → 384 fitted on 200 prompts, lambda 0\.1/);
    const clip = await ClipModel.open('tiny', { towers: ['text'] });
    const map = await LinearMap.load(file, { clipModel: clip.modelId });
    clip.close();
    expect(map.info).toMatchObject({ clipDim: 32, textDim: DIM, samples: 200, lambda: 0.1 });
    expect(fs.existsSync(path.join(work, 'maps', 'map.weights.npy'))).toBe(true);
  });

  it('fit-weights refuses fewer images with known prompts than folds, before opening any model', () => {
    const out = path.join(work, 'too-few.json');
    const r = cli(['fit-weights', '--images', images, '--truth', TRUTH, '--model', 'no-such-model', '--folds', '8', '-o', out]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('7 images in');
    expect(r.stderr).toContain('are too few for 8-fold cross-validation: need at least 8');
    expect(fs.existsSync(out)).toBe(false);
  });

  it('fit-weights prints per-fold scores and saves weights that predict reproduces in-sample', async () => {
    const weights = path.join(work, 'weights.json');
    const r = cli(['fit-weights', '--images', images, '--truth', TRUTH, '--folds', '3', '-o', weights, ...COMMON]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^fold\s+images\s+knn\s+map\s+interrogator\s+ensemble$/m);
    expect(r.stdout.split('\n').filter((l) => /^[123]\s+[23]\s/.test(l))).toHaveLength(3);
    expect(r.stdout).toMatch(/^all\s+7\s/m);
    const saved = JSON.parse(fs.readFileSync(weights, 'utf8'));
    expect(Object.keys(saved.members)).toEqual(['knn', 'map', 'interrogator']);
    const sum = Object.values(saved.members as Record<string, number>).reduce((a, b) => a + b, 0);
    expect(sum).toBeCloseTo(1, 9);
    expect(saved.fittedFor.clipModel).toMatch(/^tiny@[0-9a-f]{16}$/);
    expect(saved.fittedFor.minilmModel).toMatch(/^minilm@[0-9a-f]{16}$/);
    expect(saved).toMatchObject({ folds: 3, images: 7 });

    // predict with these weights computes the same member vectors, so its score is the fit's in-sample score.
    const inSample = Number(/in-sample with the final weights: (-?\d\.\d{4})/.exec(r.stdout)?.[1]);
    const out = path.join(work, 'weighted.csv');
    expect(cli(['predict', images, '-o', out, '--weights', weights, ...COMMON]).code).toBe(0);
    const s = await score(out, TRUTH, async () => (await MiniLMTextSide.open()).embedder);
    expect(s.mean).toBeCloseTo(inSample, 4);
  });
});

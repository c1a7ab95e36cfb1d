// The main job end to end on the 7 Kaggle sample images, with a random tiny CLIP, the real MiniLM, a
// 200-prompt bank and 40-line label lists (to stay fast): predict, validate, score, unreadable images,
// kill and resume (also in the middle of the modality-gap sample), absent members, fit-map and fit-weights.
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClipModel } from '../src/clip/model.js';
import { readSubmission } from '../src/submission/submission-csv.js';
import { validateSubmission } from '../src/submission/validate.js';
import { readPromptsCsv } from '../src/submission/prompts-csv.js';
import { score } from '../src/submission/score.js';
import { MiniLMTextSide } from '../src/predict/minilm-text-side.js';
import { loadPromptBank } from '../src/predict/prompt-bank-cache.js';
import { LinearMap } from '../src/predict/linear-map.js';
import { estimateModalityGap } from '../src/predict/modality-gap.js';
import { predict, PredictEngine, type PredictedImage, type PredictPhase } from '../src/predict/predict.js';
import type { PromptBank } from '../src/predict/prompt-bank.js';
import { KAGGLE_SAMPLE, tempDir } from './helpers/paths.js';
import { runCliInProcess, type CliResult } from './helpers/cli.js';
import { copyKaggleImages, restoreHome, useTinyClipHome, writeSmallBankAndLabels } from './helpers/tiny-clip-home.js';
import { cosineOf, maxAbsDiff } from './helpers/predict-fakes.js';

const SAMPLE_IDS = ['20057f34d', '227ef0887', '92e911621', 'a4e1c55a9', 'c98f79f71', 'd8edf2e40', 'f27825b2c'];
const TRUTH = path.join(KAGGLE_SAMPLE, 'prompts.csv');
const DIM = 384;

const home = tempDir('img2prompt-predict-home-');
const work = tempDir('img2prompt-predict-work-');
const images = path.join(work, 'images');
const bankFile = path.join(work, 'bank.txt');
const labelsDir = path.join(work, 'labels');
/** The 7 images x 4 copies under different names: enough batches of 2 to interrupt a run in the middle. */
const many = path.join(work, 'many');
const MANY = 28;
let saved: string | undefined;
let bankPrompts: string[];

/** The options every run shares: the small bank and label lists. */
const COMMON = ['--model', 'tiny', '--prompts-bank', bankFile, '--labels-dir', labelsDir];

const cli = (args: string[]): Promise<CliResult> => runCliInProcess(args, home);

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
  bankPrompts = writeSmallBankAndLabels(work).prompts;
  fs.mkdirSync(many);
  for (let c = 0; c < 4; c++) for (const id of SAMPLE_IDS) fs.copyFileSync(path.join(images, `${id}.png`), path.join(many, `c${c}${id}.png`));
});

afterAll(async () => {
  restoreHome(saved);
  fs.rmSync(home, { recursive: true, force: true });
  fs.rmSync(work, { recursive: true, force: true });
});

/** Data lines (after the header) of a checkpoint-format file that are whole records. */
function recordLines(file: string): number {
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').slice(1).filter((l) => l.endsWith('}')).length : 0;
}

/** Starts `predict args` and SIGKILLs it as soon as `ready()` holds; fails the test if the run finished first. */
async function killWhen(args: string[], ready: () => boolean): Promise<void> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/bin.ts', ...args], {
    env: { ...process.env, IMG2PROMPT_HOME: home, IMG2PROMPT_PROGRESS: '0' },
    stdio: 'ignore',
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let finishedEarly = false;
  child.once('exit', () => (finishedEarly = !child.killed));
  while (!finishedEarly) {
    if (ready()) {
      child.kill('SIGKILL');
      break;
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  await exited;
  expect(finishedEarly).toBe(false);
  expect(child.signalCode).toBe('SIGKILL');
}

function bitsEqual(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

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
    const nearestOut = path.join(work, 'run1', 'nearest.csv');
    const r = await cli(['predict', images, '-o', out, '--prompts-out', promptsOut, '--nearest-out', nearestOut, ...COMMON]);
    expect(r.stderr).toMatch(/RANDOM weights/);
    expect(r.stderr).toContain('7 images → ');
    expect(r.stderr).toContain('; CLIP encoded 7 images; members: knn, map, interrogator');
    expect(r.code).toBe(0);

    const report = await validateSubmission(out, { imageIds: SAMPLE_IDS });
    expect(report).toMatchObject({ valid: true, images: 7, rows: 7 * DIM, warnings: [] });
    const v = await cli(['validate', out, '--images', images]);
    expect(v.code).toBe(0);
    expect(v.stdout).toBe(`${out}: valid submission (7 images, ${7 * DIM} rows)\n`);
    // No resume state or error list is left behind by a clean run.
    expect(fs.readdirSync(path.dirname(out)).sort()).toEqual(['nearest.csv', 'prompts.csv', 'submission.csv']);
    // The map fitted on the fly is saved where the next run finds it.
    const maps = fs.readdirSync(path.join(home, 'maps'), { recursive: true }).map(String);
    expect(maps.some((m) => m.endsWith('.json'))).toBe(true);

    // The interrogator's prompts are made of the (small) label lists.
    const prompts = await readPromptsCsv(promptsOut);
    expect(prompts.map((p) => p.imgId)).toEqual(SAMPLE_IDS);
    const labels = new Set(fs.readdirSync(labelsDir).flatMap((f) => lines(fs.readFileSync(path.join(labelsDir, f), 'utf8'), 1000)));
    for (const p of prompts) expect(p.prompt.split(', ').some((piece) => labels.has(piece) || labels.has(piece.replace(/^(inspired )?by /, '')))).toBe(true);
    // The nearest bank prompts, a file of their own that the prompts reader (embed, score) reads too.
    const nearest = await readPromptsCsv(nearestOut);
    expect(nearest.map((p) => p.imgId)).toEqual(SAMPLE_IDS);
    for (const p of nearest) expect(bankPrompts).toContain(p.prompt);
    const [header, ...rows] = fs.readFileSync(nearestOut, 'utf8').trimEnd().split('\n');
    expect(header).toBe('imgId,prompt,similarity');
    for (const row of rows) expect(Math.abs(Number(/,(-?\d\.\d{6})$/.exec(row)?.[1]))).toBeLessThanOrEqual(1);

    const s = await cli(['score', '--pred', out, '--truth', TRUTH]);
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
      expect(r.nearestPrompt?.text).toBe(r.prompt);
      expect(maxAbsDiff(r.vector, bank.minilm.subarray(i * DIM, (i + 1) * DIM))).toBeLessThan(1e-6);
    }
    // Scored against its own prompts, such a submission is perfect: the bank's MiniLM side is the real MiniLM.
    const out = path.join(work, 'knn1.csv');
    const promptsOut = path.join(work, 'knn1.prompts.csv');
    expect((await cli(['predict', images, '-o', out, '--prompts-out', promptsOut, '--members', 'knn', '--k', '1', '--temperature', '0', ...COMMON])).code).toBe(0);
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

  it('the map member maps the run\'s images moved by the gap of their centre and the bank\'s; the nearest prompt comes with the interrogator on', async () => {
    const files = SAMPLE_IDS.map((id) => path.join(images, `${id}.png`));
    const engine = await PredictEngine.open({ model: 'tiny', promptsBank: [bankFile], labelsDir, members: ['map', 'interrogator'] });
    try {
      const results = await collect(predict(files, { engine }));
      expect(engine.counts).toEqual({ imagesEncoded: 7, embeddingsReused: 0 });
      // The same images encoded apart from the run, and the gap estimated from them and the bank's CLIP rows.
      const clip = await ClipModel.open('tiny', { towers: ['vision'] });
      const encoded = await clip.encodeImages(files);
      clip.close();
      const gap = estimateModalityGap(encoded.embeds, engine.bank.clip, engine.clip.dim).vector;
      const expected = engine.map!.apply(encoded.embeds, { gap });
      const withoutGap = engine.map!.apply(encoded.embeds);
      const dim = engine.clip.dim;
      results.forEach((r, i) => {
        expect(Object.keys(r.members).sort()).toEqual(['interrogator', 'map']);
        expect(maxAbsDiff(r.members.map!, expected.subarray(i * DIM, (i + 1) * DIM))).toBeLessThan(1e-6);
        expect(maxAbsDiff(r.members.map!, withoutGap.subarray(i * DIM, (i + 1) * DIM))).toBeGreaterThan(1e-3);
        // kNN is off, so the nearest prompt is searched apart: the bank row with the highest cosine.
        const img = encoded.embeds.subarray(i * dim, (i + 1) * dim);
        const cosines = engine.bank.texts.map((_, j) => cosineOf(img, engine.bank.clip.subarray(j * dim, (j + 1) * dim)));
        const best = cosines.indexOf(Math.max(...cosines));
        expect(r.nearestPrompt?.text).toBe(engine.bank.texts[best]);
        expect(r.nearestPrompt?.similarity).toBeCloseTo(cosines[best]!, 5);
        expect(r.prompt).not.toBe(r.nearestPrompt?.text); // the readable prompt is the interrogator's
      });
    } finally {
      engine.close();
    }
  });

  it('leaves the captioner out with a notice without a caption model, whether asked for by --members or by the weights', async () => {
    const out = path.join(work, 'captioner', 'submission.csv');
    const r = await cli(['predict', images, '-o', out, '--members', 'knn,captioner', ...COMMON]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('member captioner needs a caption model (--caption-model, or captionModel); it is absent from the ensemble');
    expect(r.stderr).toContain('members: knn\n');
    expect((await cli(['validate', out, '--images', images])).code).toBe(0);

    // Weights that give most of the weight to the captioner: it is absent, so kNN carries the ensemble.
    const weights = path.join(work, 'captioner', 'weights.json');
    fs.writeFileSync(weights, JSON.stringify({ members: { knn: 0.25, captioner: 0.75 } }));
    const notices: string[] = [];
    const files = SAMPLE_IDS.map((id) => path.join(images, `${id}.png`));
    const results = await collect(predict(files, { model: 'tiny', promptsBank: [bankFile], weights, onNotice: (m) => notices.push(m) }));
    expect(notices).toContain('member captioner needs a caption model (--caption-model, or captionModel); it is absent from the ensemble');
    const sub = await readSubmission(out);
    results.forEach((res, i) => {
      expect(Object.keys(res.members)).toEqual(['knn']);
      expect(res.fallback).toBe(false);
      expect(maxAbsDiff(res.vector, res.members.knn!)).toBeLessThan(1e-6);
      expect(maxAbsDiff(res.vector, sub.vectors.subarray(i * DIM, (i + 1) * DIM))).toBeLessThan(1e-6);
    });
  });

  it('lists an unreadable image in the errors file, gives it the fallback vector and exits 1', async () => {
    const dir = path.join(work, 'with-broken');
    fs.mkdirSync(dir);
    for (const f of fs.readdirSync(images)) fs.copyFileSync(path.join(images, f), path.join(dir, f));
    fs.writeFileSync(path.join(dir, '0000broken.png'), 'not a png');
    const out = path.join(work, 'broken', 'submission.csv');
    const r = await cli(['predict', dir, '-o', out, '--members', 'knn,map', '--batch-size', '3', ...COMMON]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('1 of 8 images could not be read; they got the fallback vector');
    const errors = fs.readFileSync(`${out}.errors.txt`, 'utf8');
    const [line, ...rest] = errors.split('\n');
    expect(rest).toEqual(['']);
    expect(line!.split('\t')[0]).toBe(path.join(dir, '0000broken.png'));
    expect(line!.split('\t')[1]).toBe('not a supported image (PNG, JPEG, WebP, AVIF, TIFF, GIF)');

    const ids = ['0000broken', ...SAMPLE_IDS];
    expect((await validateSubmission(out, { imageIds: ids })).valid).toBe(true);
    const sub = await readSubmission(out);
    expect(sub.ids).toEqual(ids);
    const fallback = (await openBank()).meanTextVector();
    expect(maxAbsDiff(sub.vectors.subarray(0, DIM), fallback)).toBeLessThan(1e-7);
    // The readable images got real predictions, not the fallback.
    for (let i = 1; i < ids.length; i++) expect(maxAbsDiff(sub.vectors.subarray(i * DIM, (i + 1) * DIM), fallback)).toBeGreaterThan(1e-3);
  });

  it('takes repeatable --prompts-bank and --labels before the image folder without swallowing it', async () => {
    const extra = path.join(work, 'extra-labels.txt');
    fs.writeFileSync(extra, 'a lighthouse in a storm\n');
    const out = path.join(work, 'options-first.csv');
    const r = await cli(['predict', '--prompts-bank', bankFile, '--labels', extra, '--labels-dir', labelsDir, '--model', 'tiny', images, '-o', out, '--members', 'knn,interrogator']);
    expect(r.stderr).toContain('7 images → ');
    expect(r.code).toBe(0);
    expect((await validateSubmission(out, { imageIds: SAMPLE_IDS })).valid).toBe(true);
  });

  it('resumes a SIGKILLed run from its checkpoint to a byte-identical submission and prompts file', async () => {
    const args = (out: string) => ['predict', many, '-o', out, '--prompts-out', `${out}.prompts.csv`, '--batch-size', '2', '--gap-images', '4', ...COMMON];
    const ref = path.join(work, 'many-ref.csv');
    expect((await cli(args(ref))).code).toBe(0);

    const out = path.join(work, 'many-killed.csv');
    const ckpt = `${out}.ckpt`;
    // Killed as soon as two batches are in the checkpoint.
    await killWhen(args(out), () => recordLines(ckpt) >= 4);
    expect(fs.existsSync(out)).toBe(false);
    const records = recordLines(ckpt);
    expect(records).toBeGreaterThanOrEqual(4);
    expect(records).toBeLessThan(MANY);

    // Resuming with other options is refused, naming what changed, and leaves the checkpoint alone.
    const other = await cli([...args(out), '--resume', '--k', '3']);
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/checkpoint belongs to a different run \(option k: 16 → 3\)/);
    // So is a resume that would read the images differently.
    const pixels = await cli([...args(out), '--resume', '--exif', 'ignore', '--image-processor', 'hf']);
    expect(pixels.code).toBe(1);
    expect(pixels.stderr).toMatch(/checkpoint belongs to a different run \(.*option imageProcessor: "?open_clip"? → "?hf"?.*\)/);
    expect(pixels.stderr).toMatch(/option exif: "?apply"? → "?ignore"?/);

    // So is resuming after an image was replaced under its name (its times put back, so only the bytes tell).
    const replaced = path.join(many, fs.readdirSync(many).sort()[1]!);
    const original = fs.readFileSync(replaced);
    const times = path.join(work, 'times-ref');
    execFileSync('touch', ['-r', replaced, times]);
    fs.copyFileSync(path.join(images, `${SAMPLE_IDS[6]}.png`), replaced);
    execFileSync('touch', ['-r', times, replaced]);
    const changed = await cli([...args(out), '--resume']);
    expect(changed.code).toBe(1);
    expect(changed.stderr).toContain(`checkpoint belongs to a different run (1 input image changed since the checkpoint was written: ${path.resolve(replaced)} (size `);
    fs.writeFileSync(replaced, original);
    execFileSync('touch', ['-r', times, replaced]);

    const r = await cli([...args(out), '--resume']);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`resuming from ${ckpt}: ${records} of ${MANY} images already done`);
    // Only the images the checkpoint did not have went through CLIP (the sampled ones were finished).
    expect(r.stderr).toContain(`, ${records} from the checkpoint; CLIP encoded ${MANY - records} images;`);
    expect(fs.readFileSync(out).equals(fs.readFileSync(ref))).toBe(true);
    expect(fs.readFileSync(`${out}.prompts.csv`).equals(fs.readFileSync(`${ref}.prompts.csv`))).toBe(true);
    expect(fs.readdirSync(work).filter((f) => f.startsWith('many-killed'))).toEqual(['many-killed.csv', 'many-killed.csv.prompts.csv']);
  });

  it('resumes a run SIGKILLed while encoding the gap sample without encoding the stored images again', async () => {
    // Every image is in the sample, so nothing is finished before all of them are encoded.
    const args = (out: string) => ['predict', many, '-o', out, '--prompts-out', `${out}.prompts.csv`, '--batch-size', '2', '--gap-images', String(MANY), ...COMMON];
    const ref = path.join(work, 'sample-ref.csv');
    const full = await cli(args(ref));
    expect(full.code).toBe(0);
    expect(full.stderr).toContain(`estimating the CLIP modality gap from the first ${MANY} images\n`);

    const out = path.join(work, 'sample-killed.csv');
    const ckpt = `${out}.ckpt`;
    const sample = `${ckpt}.sample`;
    await killWhen(args(out), () => recordLines(sample) >= 2);
    expect(recordLines(ckpt)).toBe(0);
    const stored = recordLines(sample);
    expect(stored).toBeLessThan(MANY);
    // A batch is reused only when all of it was stored (a kill can tear the last one).
    const reused = 2 * Math.floor(stored / 2);

    const r = await cli([...args(out), '--resume']);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`estimating the CLIP modality gap from the first ${MANY} images (${reused} of them encoded before this run, read back from ${sample})`);
    expect(r.stderr).toContain(`; CLIP encoded ${MANY - reused} images and reused ${reused} embeddings of the gap sample;`);
    expect(fs.readFileSync(out).equals(fs.readFileSync(ref))).toBe(true);
    expect(fs.readFileSync(`${out}.prompts.csv`).equals(fs.readFileSync(`${ref}.prompts.csv`))).toBe(true);
    expect(fs.existsSync(sample)).toBe(false);
  });

  it('reports the gap sample\'s encoding as a progress phase, and an interrupted one resumes from the stored batches with the same bits', async () => {
    const files = fs.readdirSync(many).sort().map((f) => path.join(many, f));
    const ckpt = path.join(work, 'api-sample.ckpt');
    const engine = await PredictEngine.open({ model: 'tiny', promptsBank: [bankFile], labelsDir });
    try {
      const run = { engine, batchSize: 2, gapImages: MANY };
      const ref = await collect(predict(files, run));

      // Interrupted once 5 batches of the sample are encoded (and stored): nothing was handed out yet.
      const handed: PredictedImage[] = [];
      const interrupted = (async () => {
        for await (const r of predict(files, {
          ...run,
          checkpoint: ckpt,
          onProgress: (done, _total, phase) => {
            if (phase === 'encoding images' && done === 10) throw new Error('interrupted');
          },
        })) handed.push(r);
      })();
      await expect(interrupted).rejects.toThrow('interrupted');
      expect(handed).toEqual([]);
      expect(recordLines(ckpt)).toBe(0);
      expect(recordLines(`${ckpt}.sample`)).toBe(10);

      const before = { ...engine.counts };
      const progress: [number, number, PredictPhase][] = [];
      const resumed = await collect(predict(files, { ...run, checkpoint: ckpt, resume: true, onProgress: (...p) => progress.push(p) }));
      expect(engine.counts.imagesEncoded - before.imagesEncoded).toBe(MANY - 10);
      expect(engine.counts.embeddingsReused - before.embeddingsReused).toBe(10);
      // The encoding phase starts at the stored images and moves per batch; then every image is handed out.
      const encoding = progress.filter((p) => p[2] === 'encoding images');
      expect(encoding).toEqual(Array.from({ length: 10 }, (_, i) => [10 + 2 * i, MANY, 'encoding images']));
      expect(progress.slice(encoding.length)).toEqual(Array.from({ length: MANY }, (_, i) => [i + 1, MANY, 'members']));

      expect(resumed.map((r) => r.id)).toEqual(ref.map((r) => r.id));
      resumed.forEach((r, i) => {
        expect(bitsEqual(r.vector, ref[i]!.vector)).toBe(true);
        for (const name of ['knn', 'map', 'interrogator'] as const) expect(bitsEqual(r.members[name]!, ref[i]!.members[name]!)).toBe(true);
        expect(r.prompt).toBe(ref[i]!.prompt);
        expect(r.nearestPrompt).toEqual(ref[i]!.nearestPrompt);
      });
    } finally {
      engine.close();
    }
  });
});

describe('img2prompt fit-map and fit-weights', () => {
  it('fit-map saves a map for the model and the bank', async () => {
    const file = path.join(work, 'maps', 'map.json');
    const r = await cli(['fit-map', '--model', 'tiny', '--prompts-bank', bankFile, '--lambda', '0.1', '-o', file]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/map 32 → 384 fitted on 200 prompts, lambda 0\.1/);
    const clip = await ClipModel.open('tiny', { towers: ['text'] });
    const map = await LinearMap.load(file, { clipModel: clip.modelId });
    clip.close();
    expect(map.info).toMatchObject({ clipDim: 32, textDim: DIM, samples: 200, lambda: 0.1 });
    expect(fs.existsSync(path.join(work, 'maps', 'map.weights.npy'))).toBe(true);
  });

  it('fit-weights refuses fewer images with known prompts than folds, before opening any model', async () => {
    const out = path.join(work, 'too-few.json');
    const r = await cli(['fit-weights', '--images', images, '--truth', TRUTH, '--model', 'no-such-model', '--folds', '8', '-o', out]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('7 images in');
    expect(r.stderr).toContain('are too few for 8-fold cross-validation: need at least 8');
    expect(fs.existsSync(out)).toBe(false);
  });

  it('fit-weights prints per-fold scores and saves weights that predict reproduces in-sample', async () => {
    const weights = path.join(work, 'weights.json');
    const r = await cli(['fit-weights', '--images', images, '--truth', TRUTH, '--folds', '3', '-o', weights, ...COMMON]);
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
    expect((await cli(['predict', images, '-o', out, '--weights', weights, ...COMMON])).code).toBe(0);
    const s = await score(out, TRUTH, async () => (await MiniLMTextSide.open()).embedder);
    expect(s.mean).toBeCloseTo(inSample, 4);
  });
});

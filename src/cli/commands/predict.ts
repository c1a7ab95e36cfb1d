import { promises as fs } from 'node:fs';
import { Option, type Command } from 'commander';
import { Img2PromptError } from '../../util/errors.js';
import { bankBuildProgress, createProgress, type Progress } from '../progress.js';
import { writeFileAtomic } from '../../util/atomic-write.js';
import { writePromptsCsv, type PromptRow } from '../../submission/prompts-csv.js';
import { collectRepeated, listLimited, parsePositiveInt } from '../../submission/cli-helpers.js';
import { EMBEDDING_DIM } from '../../submission/submission-csv.js';
import { defaultLabelsDir } from '../../interrogate/label-banks.js';
import { DEFAULT_BANK_DTYPE, type BankDtype, type InterrogateMode } from '../../interrogate/types.js';
import { parseMemberList } from '../../predict/members.js';
import {
  DEFAULT_BATCH_SIZE,
  DEFAULT_CLIP_MODEL,
  DEFAULT_GAP_IMAGES,
  PredictEngine,
  type PredictEngineOptions,
  type PredictPhase,
} from '../../predict/predict.js';
import { writeValidatedSubmission } from '../../predict/submission-output.js';
import { writeNearestCsv, type NearestRow } from '../../predict/nearest-csv.js';
import { ALLOW_SVG_OPTION, commandImages, type ImageInputCliOptions } from '../input-images.js';
import { addImageOptions, type ImageCliOptions } from '../image-options.js';
import { resumeFilesFor, settleEarlierRun } from '../../predict/resume-files.js';
import { withClaimedOutputs } from '../../util/output-claim.js';
import { commandLine, setInterruptHint } from '../interrupt.js';

/** Options shared by `predict` and `fit-weights` (everything that opens the engine). */
export interface EngineCliOptions extends ImageInputCliOptions, ImageCliOptions {
  model: string;
  members?: string;
  weights?: string;
  allowModelMismatch?: boolean;
  promptsBank?: string[];
  dtype: BankDtype;
  labelsDir: string;
  labels?: string[];
  map?: string;
  lambda?: string;
  mode: InterrogateMode;
  k?: string;
  temperature?: string;
  batchSize: string;
  gapImages?: string;
}

/** A non-negative finite number option, or a one-line error naming it. */
export function parseNonNegative(option: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value < 0) throw new Img2PromptError(undefined, `${option} must be a number >= 0, got "${text}"`);
  return value;
}

export function addEngineOptions(cmd: Command): Command {
  return addImageOptions(cmd)
    .option('--model <name>', 'CLIP model in the cache (models pull/import/random) or a model folder', DEFAULT_CLIP_MODEL)
    .option('--members <list>', 'comma-separated members: knn, map, interrogator (captioner: not available yet) [default: the weighted ones, else knn,map,interrogator]')
    .option('--prompts-bank <file>', 'prompt corpus file, one prompt per line; repeat for more [default: every .txt in ../shared/assets/eval/prompts]', collectRepeated)
    .option('--map <file>', 'linear map from fit-map [default: <home>/maps/<model>/<bank>.json, fitted and saved when missing]')
    .option('--lambda <x>', 'ridge strength when the map is fitted on the fly [default: chosen on held-out prompts]')
    .addOption(new Option('--mode <mode>', 'interrogator mode').choices(['fast', 'classic', 'best', 'negative']).default('fast'))
    .option('--k <n>', 'kNN: neighbours averaged per image (default 16)')
    .option('--temperature <t>', 'kNN: softmax temperature over neighbour similarities (default 0.02)')
    .option('--labels-dir <dir>', 'interrogator: folder with the built-in label lists', defaultLabelsDir())
    .option('--labels <path>', 'interrogator: extra label list (a file, or a folder of .txt files); repeat for more', collectRepeated)
    .addOption(new Option('--dtype <dtype>', 'storage of the cached CLIP-side banks').choices(['fp32', 'fp16']).default(DEFAULT_BANK_DTYPE))
    .option('--batch-size <n>', 'images per CLIP batch (and per checkpoint append)', String(DEFAULT_BATCH_SIZE))
    .option('--gap-images <n>', `images sampled for the modality gap of the map member (default ${DEFAULT_GAP_IMAGES})`)
    .option(...ALLOW_SVG_OPTION);
}

/**
 * Progress of a run, one bar per phase: the modality-gap sample's encoding, then the images. Each bar is
 * created on its phase's first report, so the notices printed before it do not cut through it.
 */
export function runProgress(label: string): { onProgress(done: number, total: number, phase: PredictPhase): void; stop(): void } {
  let bar: Progress | undefined;
  let current: PredictPhase | undefined;
  return {
    onProgress(done, total, phase) {
      if (phase !== current) {
        bar?.stop();
        bar = createProgress(phase === 'members' ? label : `${label}: encoding images for the modality gap`, total, 'images');
        current = phase;
      }
      bar!.update(done);
    },
    stop() {
      bar?.stop();
    },
  };
}

/** Engine options from the CLI; notices go to stderr. */
export function engineOptionsFrom(opts: EngineCliOptions, extra: Partial<PredictEngineOptions> = {}): PredictEngineOptions {
  return {
    model: opts.model,
    members: opts.members === undefined ? undefined : parseMemberList(opts.members),
    weights: opts.weights,
    allowModelMismatch: opts.allowModelMismatch,
    promptsBank: opts.promptsBank,
    dtype: opts.dtype,
    labelsDir: opts.labelsDir,
    labels: opts.labels,
    map: opts.map,
    lambda: parseNonNegative('--lambda', opts.lambda),
    mode: opts.mode,
    k: parsePositiveInt('--k', opts.k),
    temperature: parseNonNegative('--temperature', opts.temperature),
    imageProcessor: opts.imageProcessor,
    onNotice: (message) => process.stderr.write(`${message}\n`),
    onBankProgress: bankBuildProgress().onProgress,
    ...extra,
  };
}

interface PredictCliOptions extends EngineCliOptions {
  output: string;
  promptsOut?: string;
  nearestOut?: string;
  resume?: boolean;
  restart?: boolean;
  errors?: string;
}

/** The same command line, continuing instead of starting over. */
function withResume(args: string[]): string[] {
  return [...args.filter((a) => a !== '--restart'), ...(args.includes('--resume') ? [] : ['--resume'])];
}

/** Writes a per-image CSV, or says why there is nothing to write (a CSV needs at least one row). */
async function writeRows<T>(file: string, rows: T[], write: (file: string, rows: T[]) => Promise<void>): Promise<void> {
  if (rows.length > 0) await write(file, rows);
  else process.stderr.write(`img2prompt: no prompts to write to ${file} (no image could be read)\n`);
}

export function register(program: Command): void {
  addEngineOptions(
    program
      .command('predict')
      .description('Predict each image\'s prompt vector (ensemble of kNN over a prompt bank, linear map, CLIP Interrogator) → Kaggle submission')
      .argument('<inputs...>', 'image files and/or folders (folders: their image files, sorted by name)')
      .requiredOption('-o, --output <file>', 'submission CSV to write (imgId_eId,val; 384 rows per image)')
      .option('--prompts-out <file>', 'also write the readable prompt per image (imgId,prompt)')
      .option('--nearest-out <file>', 'also write the nearest bank prompt per image and its CLIP similarity (imgId,prompt,similarity)')
      .option('--weights <file>', 'ensemble weights from fit-weights [default: equal weights]')
      .option('--allow-model-mismatch', 'use weights fitted for other models (warns instead of refusing)')
      .option('--resume', 'continue an interrupted run from <output>.ckpt')
      .addOption(new Option('--restart', 'discard the saved progress of an interrupted run (<output>.ckpt) and start over').conflicts('resume'))
      .option('--errors <file>', 'where unreadable images are listed (path<TAB>reason) [default: <output>.errors.txt]'),
  ).action(async (inputs: string[], opts: PredictCliOptions) => {
    // Bad or clashing ids fail now, not after the run.
    const { files, ids: expectedIds, skipped } = await commandImages(inputs, opts);
    const batchSize = parsePositiveInt('--batch-size', opts.batchSize) ?? DEFAULT_BATCH_SIZE;
    const gapImages = parsePositiveInt('--gap-images', opts.gapImages);
    const output = opts.output;
    const checkpoint = `${output}.ckpt`;
    const errorsFile = opts.errors ?? `${output}.errors.txt`;
    const targets = [output, ...(opts.promptsOut ? [opts.promptsOut] : []), ...(opts.nearestOut ? [opts.nearestOut] : []), errorsFile];
    // Every output is checked and locked, and an earlier run's progress settled, before any model is opened.
    await withClaimedOutputs(targets, { createFolders: true }, async () => {
      await settleEarlierRun(checkpoint, opts);
      setInterruptHint(() => `what is finished is kept in ${checkpoint}; to continue, run: ${commandLine(withResume)}`);

      const t0 = performance.now();
      const engine = await PredictEngine.open(engineOptionsFrom(opts));
      const openSeconds = (performance.now() - t0) / 1000;
      const ids = new Array<string>(files.length);
      const vectors = new Float32Array(files.length * EMBEDDING_DIM);
      const prompts: PromptRow[] = [];
      const nearest: NearestRow[] = [];
      const failures: { file: string; reason: string }[] = [];
      let resumed = 0;
      const progress = runProgress('predict');
      try {
        for await (const r of engine.run(files, { batchSize, gapImages, exif: opts.exif, checkpoint, resume: opts.resume, restart: opts.restart, allowSvg: opts.allowSvg, onProgress: progress.onProgress })) {
          ids[r.index] = r.id;
          vectors.set(r.vector, r.index * EMBEDDING_DIM);
          if (r.resumed) resumed++;
          if (r.failure !== undefined) failures.push({ file: r.file, reason: r.failure });
          else if (r.prompt) prompts.push({ imgId: r.id, prompt: r.prompt });
          if (r.nearestPrompt) nearest.push({ imgId: r.id, prompt: r.nearestPrompt.text, similarity: r.nearestPrompt.similarity });
        }
      } finally {
        progress.stop();
        engine.close();
      }

      // Checked against the ids of the inputs, not the ones the run handed back: a lost image is refused.
      await writeValidatedSubmission(output, ids, vectors, expectedIds);
      if (opts.promptsOut) await writeRows(opts.promptsOut, prompts, writePromptsCsv);
      if (opts.nearestOut) await writeRows(opts.nearestOut, nearest, writeNearestCsv);
      const unread = [...skipped, ...failures];
      if (unread.length > 0) await writeFileAtomic(errorsFile, unread.map((f) => `${f.file}\t${f.reason.replace(/[\t\r\n]+/g, ' ')}\n`).join(''));
      else await fs.rm(errorsFile, { force: true }); // a list from an earlier run would now be wrong
      // The submission is safely in place: the resume state has done its job.
      for (const f of resumeFilesFor(checkpoint)) await fs.rm(f, { force: true });

      const secs = (performance.now() - t0) / 1000;
      const fromCheckpoint = resumed > 0 ? `, ${resumed} from the checkpoint` : '';
      const { imagesEncoded, embeddingsReused } = engine.counts;
      const reused = embeddingsReused > 0 ? ` and reused ${embeddingsReused} embeddings of the gap sample` : '';
      process.stderr.write(
        `${files.length} images → ${output} (valid) in ${secs.toFixed(1)} s${fromCheckpoint}; CLIP encoded ${imagesEncoded} images${reused}; members: ${engine.members.join(', ')}\n`,
      );
      const stages = [`open models and banks ${openSeconds.toFixed(2)} s`, ...Object.entries(engine.stageSeconds).map(([stage, t]) => `${stage} ${t.toFixed(2)} s`)];
      if (stages.length > 0) process.stderr.write(`time by stage: ${stages.join('; ')}\n`);
      if (failures.length > 0) {
        process.stderr.write(`img2prompt: ${failures.length} of ${files.length} images could not be read; they got the fallback vector (listed in ${errorsFile}):\n`);
        process.stderr.write(listLimited(failures.map((f) => `${f.file}: ${f.reason}`), failures.length, 10).join('\n') + '\n');
        process.exitCode = 1;
      }
      if (skipped.length > 0) {
        process.stderr.write(`img2prompt: ${skipped.length} inputs named like images are not image files; they were not read and have no row (listed in ${errorsFile}):\n`);
        process.stderr.write(listLimited(skipped.map((f) => `${f.file}: ${f.reason}`), skipped.length, 10).join('\n') + '\n');
        process.exitCode = 1;
      }
    });
  });
}

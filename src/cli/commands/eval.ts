import path from 'node:path';
import type { Command } from 'commander';
import { Img2PromptError } from '../../util/errors.js';
import { withClaimedOutputs } from '../../util/output-claim.js';
import { EMBEDDING_DIM } from '../../submission/submission-csv.js';
import { PredictEngine } from '../../predict/predict.js';
import { evaluate, ENSEMBLE, type Evaluation } from '../../eval/evaluate.js';
import { writeEvalReport, type ReportImage } from '../../eval/report.js';
import { labelledImages } from '../labelled-images.js';
import { collectMemberPredictions } from '../member-predictions.js';
import { addEngineOptions, engineOptionsFrom, parseNonNegativeInt, parsePositiveInt, type EngineCliOptions } from '../options.js';
import type { CliContext } from '../context.js';

interface EvalCliOptions extends EngineCliOptions {
  images: string;
  truth: string;
  folds: string;
  seed?: string;
  bootstrap: string;
  worst: string;
  output: string;
}

/** The scores table: each member and the ensemble with its 95 % interval. */
export function formatEvaluation(e: Evaluation, random: boolean): string {
  const width = Math.max(10, ...e.scores.map((s) => s.name.length));
  const lines = [`${'member'.padEnd(width)}  ${'score'.padStart(7)}  95 % interval      weight`];
  for (const s of e.scores) {
    const weight = s.name === ENSEMBLE ? `(${e.folds}-fold CV)` : (e.weights[s.name] ?? 0).toFixed(3);
    lines.push(`${s.name.padEnd(width)}  ${s.mean.toFixed(4).padStart(7)}  [${s.low.toFixed(4)}, ${s.high.toFixed(4)}]  ${weight}`);
  }
  if (random) lines.push('RANDOM CLIP weights: these numbers mean nothing (plumbing check only)');
  return lines.join('\n') + '\n';
}

export function register(program: Command, cli: CliContext): void {
  addEngineOptions(
    program
      .command('eval')
      .description("Score every member and the ensemble on images with known prompts (k-fold CV, bootstrap 95 % intervals) → a static HTML report with charts")
      .requiredOption('--images <dir>', 'folder of images whose prompts are known')
      .requiredOption('--truth <csv>', 'their true prompts (imgId,prompt)')
      .option('--folds <n>', 'cross-validation folds for the ensemble weights', '5')
      .option('--seed <n>', 'seed of the folds and the bootstrap (default 0)')
      .option('--bootstrap <n>', 'bootstrap resamples for the intervals', '2000')
      .option('--worst <n>', 'worst images shown with their prompts', '6')
      .requiredOption('-o, --output <dir>', 'report folder (index.html, report.json, images.csv, charts/, images/)'),
  ).action(async (opts: EvalCliOptions) => {
    const folds = parsePositiveInt('--folds', opts.folds) ?? 5;
    if (folds < 2) throw new Img2PromptError(undefined, `--folds must be at least 2, got ${folds}`);
    const seed = opts.seed === undefined ? 0 : parseNonNegativeInt('--seed', opts.seed);
    const resamples = parsePositiveInt('--bootstrap', opts.bootstrap) ?? 2000;
    const worst = parseNonNegativeInt('--worst', opts.worst);
    const { files, truthOf } = await labelledImages(cli, opts.images, opts.truth, opts, folds, `${folds}-fold cross-validation (or lower --folds)`, 'left out of the evaluation');
    const dir = opts.output;

    await withClaimedOutputs([path.join(dir, 'index.html'), path.join(dir, 'report.json'), path.join(dir, 'images.csv')], { createFolders: true }, async () => {
      const engine = await PredictEngine.open(engineOptionsFrom(opts, cli));
      try {
        const { kept, predictions, truth } = await collectMemberPredictions(cli, engine, files, truthOf, opts, 'eval', 'left out of the evaluation');
        if (kept.length < folds) {
          throw new Img2PromptError(opts.truth, `${kept.length} readable images with a known prompt are too few for ${folds}-fold cross-validation: need at least ${folds}`);
        }
        const evaluation = evaluate(predictions, truth, EMBEDDING_DIM, { folds, seed, resamples, label: opts.truth });
        const random = engine.clip.random;
        cli.out(formatEvaluation(evaluation, random));
        const images: ReportImage[] = kept.map((k) => ({ id: k.id, file: k.file, truth: truthOf.get(k.id)!, prompt: k.prompt }));
        await writeEvalReport(dir, {
          evaluation, images, worst,
          model: { clip: engine.modelIds.clipModel, minilm: engine.modelIds.minilmModel, random },
          title: `img2prompt eval: ${path.basename(path.resolve(opts.images))}`,
        });
        cli.err(`report for ${engine.members.join(', ')} and the ensemble on ${kept.length} images → ${path.join(dir, 'index.html')}\n`);
      } finally {
        engine.close();
      }
    });
  });
}

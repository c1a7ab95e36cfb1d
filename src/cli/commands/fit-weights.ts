import type { Command } from 'commander';
import { Img2PromptError } from '../../util/errors.js';
import { commandImages } from '../input-images.js';
import { withClaimedOutputs } from '../../util/output-claim.js';
import { readPromptsCsv } from '../../submission/prompts-csv.js';
import { EMBEDDING_DIM } from '../../submission/submission-csv.js';
import { PredictEngine } from '../../predict/predict.js';
import { fitWeights, toWeightsConfig, type FitWeightsResult } from '../../predict/fit-weights.js';
import { saveEnsembleWeights } from '../../predict/ensemble.js';
import { collectMemberPredictions } from '../member-predictions.js';
import { addEngineOptions, engineOptionsFrom, parsePositiveInt, type EngineCliOptions } from '../options.js';
import type { CliContext } from '../context.js';

interface FitWeightsCliOptions extends EngineCliOptions {
  images: string;
  truth: string;
  folds: string;
  seed?: string;
  output: string;
}

/** Per-fold table of held-out mean cosines (each member alone, then the fitted ensemble), the overall row and the weights. */
export function formatFit(result: FitWeightsResult): string {
  const names = Object.keys(result.weights);
  const cols = [...names, 'ensemble'];
  const width = cols.map((c) => Math.max(8, c.length));
  const cell = (text: string, i: number) => text.padStart(width[i]!);
  const lines = [`${'fold'.padEnd(6)}${'images'.padStart(7)}  ${cols.map(cell).join('  ')}`];
  for (const f of result.folds) {
    const values = [...names.map((n) => f.members[n]!), f.ensemble].map((v, i) => cell(v.toFixed(4), i));
    lines.push(`${String(f.fold + 1).padEnd(6)}${String(f.images).padStart(7)}  ${values.join('  ')}`);
  }
  const overall = [...names.map((n) => result.memberScores[n]!), result.cvScore].map((v, i) => cell(v.toFixed(4), i));
  lines.push(`${'all'.padEnd(6)}${String(result.images).padStart(7)}  ${overall.join('  ')}`);
  lines.push(`cross-validated ensemble: ${result.cvScore.toFixed(4)} (in-sample with the final weights: ${result.fitScore.toFixed(4)})`);
  lines.push(`weights: ${names.map((n) => `${n} ${result.weights[n]!.toFixed(3)}`).join(', ')}`);
  return lines.join('\n') + '\n';
}

export function register(program: Command, cli: CliContext): void {
  addEngineOptions(
    program
      .command('fit-weights')
      .description('Fit the ensemble weights on images with known prompts (k-fold cross-validated) → weights JSON for predict --weights')
      .requiredOption('--images <dir>', 'folder of images whose prompts are known')
      .requiredOption('--truth <csv>', 'their true prompts (imgId,prompt)')
      .option('--folds <n>', 'cross-validation folds', '5')
      .option('--seed <n>', 'seed of the fold assignment (default 0)')
      .requiredOption('-o, --output <file>', 'weights JSON to write'),
  ).action(async (opts: FitWeightsCliOptions) => {
    const folds = parsePositiveInt('--folds', opts.folds) ?? 5;
    if (folds < 2) throw new Img2PromptError(undefined, `--folds must be at least 2, got ${folds}`);
    const seed = opts.seed === undefined ? 0 : Number(opts.seed);
    if (!Number.isSafeInteger(seed)) throw new Img2PromptError(undefined, `--seed must be an integer, got "${opts.seed}"`);

    const truthRows = await readPromptsCsv(opts.truth);
    const truthOf = new Map(truthRows.map((r) => [r.imgId, r.prompt]));
    const all = await commandImages([opts.images], opts);
    for (const s of all.skipped) cli.err(`img2prompt: ${s.file}: ${s.reason} (left out of the fit)\n`);
    const files = all.files.filter((_, i) => truthOf.has(all.ids[i]!));
    if (all.files.length > files.length) {
      cli.err(`${all.files.length - files.length} of ${all.files.length} images have no prompt in ${opts.truth}; they are left out\n`);
    }
    // Refused before any model is opened: a fit on fewer images than folds has an empty fold.
    if (files.length < folds) {
      throw new Img2PromptError(
        opts.truth,
        `${files.length} image${files.length === 1 ? '' : 's'} in ${opts.images} with a known prompt are too few for ${folds}-fold cross-validation: need at least ${folds} (or lower --folds)`,
      );
    }

    await withClaimedOutputs([opts.output], { createFolders: true }, async () => {
      const engine = await PredictEngine.open(engineOptionsFrom(opts, cli));
      try {
        const members = engine.members;
        const { predictions, truth } = await collectMemberPredictions(cli, engine, files, truthOf, opts, 'fit-weights', 'left out of the fit');
        const result = fitWeights(predictions, truth, EMBEDDING_DIM, { folds, seed, label: opts.truth });
        cli.out(formatFit(result));
        await saveEnsembleWeights(opts.output, toWeightsConfig(result, engine.modelIds));
        cli.err(`weights for ${members.join(', ')} (clip ${engine.modelIds.clipModel}, ${engine.modelIds.minilmModel}) → ${opts.output}\n`);
      } finally {
        engine.close();
      }
    });
  });
}

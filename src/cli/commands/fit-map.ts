import { Option, type Command } from 'commander';
import { bankBuildProgress, createProgress } from '../progress.js';
import { withClaimedOutputs } from '../../util/output-claim.js';
import { ClipModel } from '../../clip/model.js';
import { DEFAULT_BANK_DTYPE, type BankDtype } from '../../interrogate/types.js';
import { MiniLMTextSide } from '../../predict/minilm-text-side.js';
import { loadPromptBank } from '../../predict/prompt-bank-cache.js';
import { defaultMapPath, fitAndSaveMap } from '../../predict/map-store.js';
import { DEFAULT_CLIP_MODEL } from '../../predict/predict.js';
import { parseNonNegative } from './predict.js';
import { weightsFileFor } from '../../predict/linear-map.js';
import { collectRepeated } from '../../submission/cli-helpers.js';

interface FitMapCliOptions {
  model: string;
  promptsBank?: string[];
  lambda?: string;
  output?: string;
  dtype: BankDtype;
}

export function register(program: Command): void {
  program
    .command('fit-map')
    .description('Fit the linear CLIP→MiniLM map (ridge regression) on the prompt bank; predict uses it for the map member')
    .option('--model <name>', 'CLIP model in the cache or a model folder', DEFAULT_CLIP_MODEL)
    .option('--prompts-bank <file>', 'prompt corpus file, one prompt per line; repeat for more [default: every .txt in ../shared/assets/eval/prompts]', collectRepeated)
    .option('--lambda <x>', 'relative ridge strength [default: chosen by held-out cosine among 1e-4 .. 1]')
    .option('-o, --output <file>', 'map manifest to write (weights go beside it as .weights.npy) [default: <home>/maps/<model>/<bank>.json, where predict looks]')
    .addOption(new Option('--dtype <dtype>', 'storage of the cached CLIP-side bank').choices(['fp32', 'fp16']).default(DEFAULT_BANK_DTYPE))
    .action(async (opts: FitMapCliOptions) => {
      const lambda = parseNonNegative('--lambda', opts.lambda);
      // A named output is checked and locked before the bank is built; the default one lives in the cache.
      const targets = opts.output ? [opts.output, weightsFileFor(opts.output)] : [];
      await withClaimedOutputs(targets, { createFolders: true }, async () => {
        const t0 = performance.now();
        const clip = await ClipModel.open(opts.model, { towers: ['text'] });
        const minilm = await MiniLMTextSide.open().catch((err) => {
          clip.close();
          throw err;
        });
        try {
          if (clip.random) process.stderr.write(`warning: CLIP model ${clip.name} has RANDOM weights: this map means nothing (for tests only)\n`);
          const { bank, def } = await loadPromptBank(clip, minilm, {
            files: opts.promptsBank,
            clipDtype: opts.dtype,
            onProgress: bankBuildProgress().onProgress,
            onBank: (b, side) => process.stderr.write(`prompt bank ${b.name} (${side}): ${b.labels.length} prompts, ${b.built ? `built (${b.reason ?? 'new'})` : 'cached'}\n`),
          });
          const file = opts.output ?? defaultMapPath(clip.modelId, def.name);
          const bar = createProgress('fit-map', bank.size, 'prompts');
          const map = await fitAndSaveMap(bank, file, { clipModel: clip.modelId, minilmModel: minilm.identity }, { lambda, onProgress: (rows) => bar.update(rows) });
          bar.stop();
          const { info } = map;
          const lines: string[] = [];
          if (info.selection) {
            lines.push(`lambda selection on ${info.selection.holdout} held-out prompts:`);
            for (const s of info.selection.scores) lines.push(`  lambda ${String(s.lambda).padEnd(6)}  cosine ${s.cosine.toFixed(4)}${s.lambda === info.lambda ? '  <- chosen' : ''}`);
          }
          lines.push(`map ${info.clipDim} → ${info.textDim} fitted on ${info.samples} prompts, lambda ${info.lambda}, mean cosine on the bank ${info.fitCosine.toFixed(4)}`);
          lines.push(`→ ${file} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
          process.stdout.write(lines.join('\n') + '\n');
        } finally {
          clip.close();
          minilm.close();
        }
      });
    });
}

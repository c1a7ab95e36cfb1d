import type { Command } from 'commander';
import { withClaimedOutputs } from '../../util/output-claim.js';
import { ClipModel } from '../../clip/model.js';
import type { BankDtype } from '../../interrogate/types.js';
import { MiniLMTextSide } from '../../predict/minilm-text-side.js';
import { loadPromptBank } from '../../predict/prompt-bank-cache.js';
import { defaultMapPath, fitAndSaveMap } from '../../predict/map-store.js';
import { weightsFileFor } from '../../predict/linear-map.js';
import { addClipModelOption, addPromptBankDtypeOption, addPromptsBankOption, parseNonNegative } from '../options.js';
import type { CliContext } from '../context.js';

interface FitMapCliOptions {
  model: string;
  promptsBank?: string[];
  lambda?: string;
  output?: string;
  dtype: BankDtype;
}

export function register(program: Command, cli: CliContext): void {
  const command = program
    .command('fit-map')
    .description('Fit the linear CLIP→MiniLM map (ridge regression) on the prompt bank; predict uses it for the map member');
  addPromptsBankOption(addClipModelOption(command))
    .option('--lambda <x>', 'relative ridge strength [default: chosen by held-out cosine among 1e-4 .. 1]')
    .option('-o, --output <file>', 'map manifest to write (weights go beside it as .weights.npy) [default: <home>/maps/<model>/<bank>.json, where predict looks]');
  addPromptBankDtypeOption(command)
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
          if (clip.random) cli.err(`warning: CLIP model ${clip.name} has RANDOM weights: this map means nothing (for tests only)\n`);
          const { bank, def } = await loadPromptBank(clip, minilm, {
            files: opts.promptsBank,
            clipDtype: opts.dtype,
            onProgress: cli.bankProgress().onProgress,
            onBank: (b, side) => cli.err(`prompt bank ${b.name} (${side}): ${b.labels.length} prompts, ${b.built ? `built (${b.reason ?? 'new'})` : 'cached'}\n`),
          });
          const file = opts.output ?? defaultMapPath(clip.modelId, def.name);
          const bar = cli.progress('fit-map', bank.size, 'prompts');
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
          cli.out(lines.join('\n') + '\n');
        } finally {
          clip.close();
          minilm.close();
        }
      });
    });
}

import type { Command } from 'commander';
import { Option } from 'commander';
import { bankBuildProgress } from '../progress.js';
import { openInterrogatorSetup, type InterrogatorSetup } from '../../interrogate/interrogate.js';
import { defaultLabelsDir } from '../../interrogate/label-banks.js';
import { DEFAULT_BANK_DTYPE, type BankDtype } from '../../interrogate/types.js';
import type { CachedBank } from '../../interrogate/bank-cache.js';
import type { ClipImageProcessor } from '../../image/image-processor.js';
import { collectRepeated } from '../../submission/cli-helpers.js';

export interface LabelOptions {
  model: string;
  labelsDir: string;
  labels?: string[];
  dtype: BankDtype;
}

/** Options shared by `labels build` and `interrogate`. */
export function addLabelOptions(cmd: Command): Command {
  return cmd
    .requiredOption('--model <name>', 'CLIP model in the cache (models pull/import/random) or a model folder')
    .option('--labels-dir <dir>', 'folder with the built-in lists (artists, flavors, mediums, movements, sites, negative)', defaultLabelsDir())
    // One path per --labels, repeatable: a variadic option would swallow the image paths after it.
    .option('--labels <path>', 'extra label list: a file (one label per line) or a folder of .txt files, each one bank; repeat for more', collectRepeated)
    .addOption(new Option('--dtype <dtype>', 'storage of the cached bank matrices (fp16 halves disk and memory)').choices(['fp32', 'fp16']).default(DEFAULT_BANK_DTYPE));
}

/** Opens the model and every bank through the cache, with a progress bar per bank that needs building. */
export async function openInterrogator(opts: LabelOptions & { imageProcessor?: ClipImageProcessor }): Promise<InterrogatorSetup> {
  const progress = bankBuildProgress();
  return openInterrogatorSetup({
    model: opts.model,
    imageProcessor: opts.imageProcessor,
    labelsDir: opts.labelsDir,
    labels: opts.labels,
    dtype: opts.dtype,
    onNotice: (message) => process.stderr.write(`${message}\n`),
    onBankProgress: progress.onProgress,
    onBank(bank: CachedBank) {
      progress.stop();
      const how = bank.built ? `built (${bank.reason ?? 'new'})` : 'cached';
      process.stderr.write(`bank ${bank.name}: ${bank.labels.length} labels, ${how}\n`);
    },
  });
}

export function register(program: Command): void {
  const labels = program.command('labels').description('Label banks of the CLIP Interrogator, embedded once per CLIP model and cached');
  addLabelOptions(
    labels
      .command('build')
      .description('Encode every label bank with the CLIP text tower into the cache ($IMG2PROMPT_HOME/banks); resumes an interrupted build'),
  ).action(async (opts: LabelOptions) => {
    const t0 = performance.now();
    (await openInterrogator(opts)).close();
    process.stderr.write(`label banks ready in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  });
}

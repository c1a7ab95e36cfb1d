import type { Command } from 'commander';
import { InterrogateEngine } from '../../interrogate/engine.js';
import type { CachedBank } from '../../interrogate/bank-cache.js';
import type { ClipImageProcessor } from '../../image/image-processor.js';
import { addLabelOptions, type LabelOptions } from '../options.js';
import type { CliContext } from '../context.js';

/** Opens the model and every bank through the cache, with a progress display per bank that needs building. */
export async function openInterrogator(cli: CliContext, opts: LabelOptions & { imageProcessor?: ClipImageProcessor; captionModel?: string }): Promise<InterrogateEngine> {
  const progress = cli.bankProgress();
  return InterrogateEngine.open({
    model: opts.model,
    captionModel: opts.captionModel,
    imageProcessor: opts.imageProcessor,
    labelsDir: opts.labelsDir,
    labels: opts.labels,
    dtype: opts.dtype,
    onNotice: (message) => cli.err(`${message}\n`),
    onBankProgress: progress.onProgress,
    onBank(bank: CachedBank) {
      progress.stop();
      const how = bank.built ? `built (${bank.reason ?? 'new'})` : 'cached';
      cli.err(`bank ${bank.name}: ${bank.labels.length} labels, ${how}\n`);
    },
  });
}

export function register(program: Command, cli: CliContext): void {
  const labels = program.command('labels').description('Label banks of the CLIP Interrogator, embedded once per CLIP model and cached');
  addLabelOptions(
    labels
      .command('build')
      .description('Encode every label bank with the CLIP text tower into the cache ($IMG2PROMPT_HOME/banks); resumes an interrupted build'),
  ).action(async (opts: LabelOptions) => {
    const t0 = performance.now();
    (await openInterrogator(cli, opts)).close();
    cli.err(`label banks ready in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  });
}

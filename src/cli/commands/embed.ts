import path from 'node:path';
import type { Command } from 'commander';
import { Img2PromptError } from '../../util/errors.js';
import { withClaimedOutputs } from '../../util/output-claim.js';
import type { TextEmbedder } from '../../text/embedder.js';
import { readPromptsCsv } from '../../submission/prompts-csv.js';
import { EMBEDDING_DIM, writeSubmission } from '../../submission/submission-csv.js';
import { embedPrompts } from '../../submission/embed-prompts.js';
import { openMiniLMEmbedder } from '../../submission/default-embedder.js';
import { parsePositiveInt } from '../options.js';
import type { CliContext } from '../context.js';
import { createProgress, type ProgressStream } from '../progress.js';

export { embedPrompts } from '../../submission/embed-prompts.js';

export interface EmbedCommandOptions {
  prompts: string;
  output: string;
  batchSize?: number;
  /** Defaults to all-MiniLM-L6-v2 from the model cache. */
  embedder?: TextEmbedder;
  /** Where progress is drawn (default stderr). */
  progressStream?: ProgressStream;
}

/**
 * prompts CSV -> Kaggle submission. Inputs and the output are checked (and the output locked) before the
 * (slow) embedding, and the submission is written atomically at the end, so a failure leaves no output behind.
 */
export async function embedCommand(options: EmbedCommandOptions): Promise<{ images: number }> {
  if (path.resolve(options.prompts) === path.resolve(options.output)) {
    throw new Img2PromptError(options.output, 'output would overwrite the prompts CSV it is made from');
  }
  const rows = await readPromptsCsv(options.prompts);
  await withClaimedOutputs([options.output], {}, async () => {
    const embedder = options.embedder ?? (await openMiniLMEmbedder());
    let vectors: Float32Array;
    const progress = createProgress('embed', rows.length, 'prompts', { stream: options.progressStream });
    let reported = 0;
    try {
      if (embedder.dim !== EMBEDDING_DIM) {
        throw new Img2PromptError(undefined, `embedder gives ${embedder.dim}-d vectors; a Kaggle submission needs ${EMBEDDING_DIM}`, { code: 'MODEL_MISMATCH' });
      }
      vectors = await embedPrompts(rows, embedder, {
        batchSize: options.batchSize,
        onProgress: (done) => {
          if (done > reported) progress.tick(done - reported);
          reported = Math.max(reported, done);
        },
      });
    } finally {
      progress.stop();
      if (!options.embedder) embedder.close?.();
    }
    await writeSubmission(options.output, rows.map((r) => r.imgId), vectors);
  });
  return { images: rows.length };
}

export function register(program: Command, cli: CliContext): void {
  program
    .command('embed')
    .description('embed a prompts CSV (imgId,prompt) with all-MiniLM-L6-v2 into a Kaggle submission (imgId_eId,val)')
    .requiredOption('--prompts <csv>', 'prompts CSV with imgId and prompt columns')
    .requiredOption('-o, --output <csv>', 'submission CSV to write')
    .option('--batch-size <n>', 'prompts per inference batch (default 64)')
    .action(async (opts: { prompts: string; output: string; batchSize?: string }) => {
      const { images } = await embedCommand({
        prompts: opts.prompts,
        output: opts.output,
        batchSize: parsePositiveInt('--batch-size', opts.batchSize),
        progressStream: cli.io.stderr,
      });
      cli.err(`wrote ${opts.output}: ${images} images x ${EMBEDDING_DIM} rows\n`);
    });
}

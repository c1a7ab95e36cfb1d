import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { writePromptsCsv } from '../../submission/prompts-csv.js';
import { writeCaptionsCsv } from '../../caption/captions-csv.js';
import { writeNearestCsv } from '../../predict/nearest-csv.js';
import { withClaimedOutputs } from '../../util/output-claim.js';
import { connectRedis } from '../../queue/redis-connection.js';
import { collectRun, writeCollectedSubmission } from '../../queue/run-collect.js';
import { addErrorsFileOption, errorsFileFor, summarizeUnreadImages, writeErrorsFile } from '../unread-images.js';
import { addRedisRunOptions, CONNECT_TIMEOUT_MS } from './queue.js';

interface CollectCliOptions {
  redis: string;
  run: string;
  output: string;
  promptsOut?: string;
  captionsOut?: string;
  nearestOut?: string;
  errors?: string;
}

/** Writes a per-image CSV, or says why there is nothing to write (as predict does). */
async function writeRows<T>(cli: CliContext, file: string, rows: T[], write: (file: string, rows: T[]) => Promise<void>): Promise<void> {
  if (rows.length > 0) await write(file, rows);
  else cli.err(`img2prompt: no prompts to write to ${file} (no image could be read)\n`);
}

export function register(queue: Command, cli: CliContext): void {
  addErrorsFileOption(addRedisRunOptions(
    queue
      .command('collect')
      .description('Write a finished run\'s submission (and prompts, captions, nearest prompts): the bytes a single-machine predict of the same inputs writes')
      .requiredOption('-o, --output <file>', 'submission CSV to write (imgId_eId,val; 384 rows per image)')
      .option('--prompts-out <file>', 'also write the readable prompt per image (imgId,prompt)')
      .option('--captions-out <file>', 'also write the caption per image (imgId,caption; runs pushed with --caption-model)')
      .option('--nearest-out <file>', 'also write the nearest bank prompt per image and its CLIP similarity'),
  )).action(async (opts: CollectCliOptions) => {
    const errorsFile = errorsFileFor(opts);
    const targets = [opts.output, ...[opts.promptsOut, opts.captionsOut, opts.nearestOut].filter((f): f is string => f !== undefined), errorsFile];
    await withClaimedOutputs(targets, { createFolders: true }, async () => {
      const redis = await connectRedis(opts.redis, { connectTimeoutMs: CONNECT_TIMEOUT_MS });
      let collected;
      try {
        collected = await collectRun(redis, opts.run);
      } finally {
        redis.disconnect();
      }
      await writeCollectedSubmission(opts.output, collected);
      if (opts.promptsOut) await writeRows(cli, opts.promptsOut, collected.prompts, writePromptsCsv);
      if (opts.captionsOut) await writeRows(cli, opts.captionsOut, collected.captions, writeCaptionsCsv);
      if (opts.nearestOut) await writeRows(cli, opts.nearestOut, collected.nearest, writeNearestCsv);
      const { failures, skipped, failed } = collected;
      await writeErrorsFile({ errorsFile, failures, skipped });
      cli.err(`run ${opts.run}: ${collected.ids.length} images → ${opts.output} (valid)\n`);
      for (const f of failed) cli.err(`img2prompt: chunk ${f.chunk + 1} of run ${opts.run} is in the failed list (${f.images} images, ${f.attempts} attempts): ${f.reason}\n`);
      if (failed.length > 0) cli.fail();
      summarizeUnreadImages(cli, { errorsFile, failures, skipped, total: collected.ids.length, consequence: 'they got the fallback vector' });
    });
  });
}

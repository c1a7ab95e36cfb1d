import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { chunkCounts, openChunkQueue, pendingChunks } from '../../queue/chunk-queue.js';
import { connectRedis } from '../../queue/redis-connection.js';
import { RUNS_KEY, runDataKeys } from '../../queue/run-keys.js';
import { readRunSpec } from '../../queue/run-spec.js';
import { Img2PromptError } from '../../util/errors.js';
import { addRedisRunOptions, CONNECT_TIMEOUT_MS } from './queue.js';

export function register(queue: Command, cli: CliContext): void {
  addRedisRunOptions(
    queue
      .command('remove')
      .description('Delete a run from Redis: its chunks, results and description (collect it first; Redis holds about 2 KB per image)')
      .option('--force', 'also remove a run that still has chunks to run'),
  ).action(async (opts: { redis: string; run: string; force?: boolean }) => {
    const redis = await connectRedis(opts.redis, { connectTimeoutMs: CONNECT_TIMEOUT_MS });
    try {
      const spec = await readRunSpec(redis, opts.run);
      const chunks = openChunkQueue(redis, opts.run);
      try {
        const pending = pendingChunks(await chunkCounts(chunks));
        if (pending > 0 && !opts.force) throw new Img2PromptError(undefined, `run "${opts.run}" still has ${pending} chunks to run; stop its workers and give --force to remove it anyway`);
        await chunks.obliterate({ force: true });
      } finally {
        await chunks.close();
      }
      await redis.del(...runDataKeys(opts.run));
      await redis.srem(RUNS_KEY, opts.run);
      cli.err(`run ${opts.run} removed (${spec.images} images)\n`);
    } finally {
      redis.disconnect();
    }
  });
}

import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { openChunkQueue, retryFailedChunks } from '../../queue/chunk-queue.js';
import { connectRedis } from '../../queue/redis-connection.js';
import { readRunSpec } from '../../queue/run-spec.js';
import { addRedisRunOptions, CONNECT_TIMEOUT_MS } from './queue.js';

export function register(queue: Command, cli: CliContext): void {
  addRedisRunOptions(
    queue
      .command('retry')
      .description('Put a run\'s failed chunks back in the queue (once what made them fail is fixed: a mount, a file, a model)'),
  ).action(async (opts: { redis: string; run: string }) => {
    const redis = await connectRedis(opts.redis, { connectTimeoutMs: CONNECT_TIMEOUT_MS });
    try {
      await readRunSpec(redis, opts.run);
      const chunks = openChunkQueue(redis, opts.run);
      try {
        const n = await retryFailedChunks(chunks);
        cli.err(n === 0 ? `run ${opts.run} has no failed chunk\n` : `run ${opts.run}: ${n} failed chunk${n === 1 ? ' is' : 's are'} waiting again; workers take ${n === 1 ? 'it' : 'them'}\n`);
      } finally {
        await chunks.close();
      }
    } finally {
      redis.disconnect();
    }
  });
}

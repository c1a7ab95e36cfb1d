import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { connectRedis } from '../../queue/redis-connection.js';
import { runStatus, type RunStatus } from '../../queue/run-status.js';
import { addRedisRunOptions, CONNECT_TIMEOUT_MS } from './queue.js';

interface StatusCliOptions {
  redis: string;
  run: string;
  json?: boolean;
}

function duration(seconds: number): string {
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function describe(s: RunStatus): string {
  const c = s.counts;
  const rate = s.imagesPerSecond === null ? 'images/s: -' : `${s.imagesPerSecond.toFixed(1)} images/s`;
  const eta = s.finished ? 'finished' : s.etaSeconds === null ? 'ETA: -' : `ETA ${duration(s.etaSeconds)}`;
  const lines = [
    `run ${s.run}: ${s.imagesDone} of ${s.images} images done (${s.imagesUnreadable} unreadable); ${rate}; ${eta}`,
    `chunks: ${c.completed} done, ${c.waiting} waiting, ${c.active} active, ${c.delayed} waiting for a retry, ${c.failed} failed (of ${s.chunks})`,
  ];
  for (const f of s.failed) lines.push(`failed: chunk ${f.chunk + 1} (${f.images} images, ${f.attempts} attempts): ${f.reason}`);
  return lines.join('\n') + '\n';
}

export function register(queue: Command, cli: CliContext): void {
  addRedisRunOptions(
    queue
      .command('status')
      .description('Where a run stands: chunks done, waiting, active and failed (with reasons), images/s and the time left')
      .option('--json', 'print the status as JSON'),
  ).action(async (opts: StatusCliOptions) => {
    const redis = await connectRedis(opts.redis, { connectTimeoutMs: CONNECT_TIMEOUT_MS });
    try {
      const status = await runStatus(redis, opts.run);
      cli.out(opts.json ? `${JSON.stringify(status, null, 2)}\n` : describe(status));
    } finally {
      redis.disconnect();
    }
  });
}

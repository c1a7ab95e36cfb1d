import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { parsePositiveInt, parseNonNegative } from '../options.js';
import { releaseInterruptHandlers } from '../interrupt.js';
import { chunkCounts, openChunkQueue, pendingChunks } from '../../queue/chunk-queue.js';
import { connectRedis, parseRedisUrl, type RedisClient } from '../../queue/redis-connection.js';
import { checkRunName, RUNS_KEY } from '../../queue/run-keys.js';
import {
  DEFAULT_LOCK_DURATION_MS, DEFAULT_MAX_STALLED_COUNT, DEFAULT_STALLED_INTERVAL_MS, serveRun, type WorkerSettings,
} from '../../queue/run-worker.js';
import { errorMessage } from '../../util/errors.js';

interface WorkerCliOptions {
  redis: string;
  run?: string;
  concurrency?: string;
  untilDone?: boolean;
  lockDuration?: string;
  stalledInterval?: string;
  maxStalled?: string;
}

/** How long a worker without --run waits before looking for runs with work again. */
const IDLE_MS = 5_000;

/** The runs pushed to this Redis that still have chunks to run, oldest name first. */
async function runsWithWork(redis: RedisClient, refused: ReadonlySet<string>): Promise<string[]> {
  const names = (await redis.smembers(RUNS_KEY)).filter((n) => !refused.has(n)).sort();
  const out: string[] = [];
  for (const name of names) {
    const queue = openChunkQueue(redis, name);
    try {
      if (pendingChunks(await chunkCounts(queue)) > 0) out.push(name);
    } finally {
      await queue.close();
    }
  }
  return out;
}

function seconds(option: string, text: string | undefined, fallbackMs: number): number {
  const s = parseNonNegative(option, text);
  return s === undefined ? fallbackMs : Math.max(1, Math.round(s * 1000));
}

export function register(program: Command, cli: CliContext): void {
  program
    .command('worker')
    .description('Run the chunks of queued runs (img2prompt queue push): opens the run\'s models once and works until stopped; one per GPU, on any number of machines')
    .requiredOption('--redis <url>', 'the Redis the runs were pushed to, e.g. redis://queue-host:6379')
    .option('--run <name>', 'work on this run only [default: every run with chunks left, one after another]')
    .option('--concurrency <n>', 'chunks run at once (sharing one engine; default 1)')
    .option('--until-done', 'exit once no chunk is left to run, instead of waiting for more')
    .option('--lock-duration <s>', `seconds a dead worker's chunk stays locked before another worker takes it over (default ${DEFAULT_LOCK_DURATION_MS / 1000})`)
    .option('--stalled-interval <s>', `seconds between this worker's checks for chunks of dead workers (default ${DEFAULT_STALLED_INTERVAL_MS / 1000})`)
    .option('--max-stalled <n>', `times a chunk may be taken over from a dead worker before it is failed (default ${DEFAULT_MAX_STALLED_COUNT})`)
    .addHelpText('after', `
The run's models and options come from the run (queue push), not from this command line; a worker whose
models differ from the run's (another release, other weights under the same name) refuses the run.
SIGINT or SIGTERM: finish the chunks in hand, then exit (a second signal exits at once).`)
    .action(async (opts: WorkerCliOptions) => {
      parseRedisUrl(opts.redis);
      const only = opts.run === undefined ? undefined : checkRunName(opts.run);
      const stop = new AbortController();
      const settings: WorkerSettings = {
        concurrency: parsePositiveInt('--concurrency', opts.concurrency) ?? 1,
        lockDurationMs: seconds('--lock-duration', opts.lockDuration, DEFAULT_LOCK_DURATION_MS),
        stalledIntervalMs: seconds('--stalled-interval', opts.stalledInterval, DEFAULT_STALLED_INTERVAL_MS),
        maxStalledCount: parsePositiveInt('--max-stalled', opts.maxStalled) ?? DEFAULT_MAX_STALLED_COUNT,
        untilDone: opts.untilDone ?? false,
        signal: stop.signal,
      };
      // A worker stops between chunks: the chunk in hand is finished and its results stored.
      releaseInterruptHandlers();
      const onSignal = (signal: NodeJS.Signals) => {
        cli.err(`img2prompt worker: ${signal}: finishing the chunks in hand, then exiting\n`);
        process.once(signal, () => process.exit(1));
        stop.abort();
      };
      process.once('SIGTERM', onSignal);
      process.once('SIGINT', onSignal);
      // A worker waits for Redis as long as it takes (it may start before Redis, or Redis may restart).
      const redis = await connectRedis(opts.redis, { onRetry: (reason) => cli.err(`worker: waiting for Redis (${reason})\n`) });
      try {
        if (only !== undefined) {
          const done = await serveRun(redis, only, cli, settings);
          cli.err(`worker: ${done} chunks of run ${only} done here\n`);
          return;
        }
        const refused = new Set<string>();
        while (!stop.signal.aborted) {
          const runs = await runsWithWork(redis, refused);
          if (runs.length === 0) {
            if (settings.untilDone) break;
            await new Promise((resolve) => setTimeout(resolve, IDLE_MS));
            continue;
          }
          try {
            const done = await serveRun(redis, runs[0]!, cli, { ...settings, untilDone: true });
            cli.err(`worker: ${done} chunks of run ${runs[0]} done here\n`);
          } catch (err) {
            // Another run may still suit this machine's models.
            refused.add(runs[0]!);
            cli.err(`img2prompt: ${errorMessage(err)}\n`);
            cli.fail();
          }
        }
      } finally {
        process.removeListener('SIGTERM', onSignal);
        process.removeListener('SIGINT', onSignal);
        redis.disconnect();
      }
    });
}

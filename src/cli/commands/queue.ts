/**
 * `img2prompt queue push|status|collect|retry|remove`: a predict run spread over any number of machines through a
 * Redis-backed BullMQ queue (src/queue/). Each subcommand is its own file; this one groups them and
 * holds the two options they share.
 */
import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { register as registerPush } from './queue-push.js';
import { register as registerStatus } from './queue-status.js';
import { register as registerCollect } from './queue-collect.js';
import { register as registerRetry } from './queue-retry.js';
import { register as registerRemove } from './queue-remove.js';

/** How long a command run by hand waits for Redis before saying it cannot reach it. */
export const CONNECT_TIMEOUT_MS = 10_000;

/** `--redis URL` and `--run NAME`, required, for the queue commands. */
export function addRedisRunOptions(cmd: Command): Command {
  return cmd
    .requiredOption('--redis <url>', 'the Redis every machine of the run uses, e.g. redis://queue-host:6379 (rediss:// for TLS; redis://:password@host:port/db)')
    .requiredOption('--run <name>', 'the run\'s name (letters, digits, . _ -): workers, status and collect find the run by it');
}

export function register(program: Command, cli: CliContext): void {
  const queue = program
    .command('queue')
    .description('Run predict on many machines: push chunks of images to a Redis (BullMQ) queue, run `img2prompt worker` anywhere, collect the submission');
  registerPush(queue, cli);
  registerStatus(queue, cli);
  registerCollect(queue, cli);
  registerRetry(queue, cli);
  registerRemove(queue, cli);
}

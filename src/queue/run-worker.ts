/**
 * A worker of one run: checks that this machine holds the run's models, opens them once (PredictEngine),
 * pins or checks the run's fingerprint, then takes chunks from the run's BullMQ queue until told to stop
 * (or, with `untilDone`, until no chunk is waiting, running or waiting for a retry).
 *
 * Delivery is at least once: a worker that dies leaves its chunk locked until the lock expires, and
 * BullMQ's stalled-job check (run by every worker) puts it back for another; results are keyed by image
 * id, so a chunk that runs twice writes the same fields again. A chunk that throws is retried with
 * backoff and lands in the failed list after its last attempt. An unreadable image is not a chunk
 * failure: it gets predict's fallback vector and its reason is stored for collect. A chunk whose images
 * are all unreadable ("poisoned": a missing mount, a folder of broken files) fails like an error does,
 * after its results are stored, so collect still writes the rows predict would and names the chunk.
 */
import os from 'node:os';
import { Worker, type Job } from 'bullmq';
import type { CliContext } from '../cli/context.js';
import { engineOptionsFrom, type EngineCliOptions } from '../cli/options.js';
import { PredictEngine } from '../predict/predict.js';
import { Img2PromptError, errorMessage } from '../util/errors.js';
import { chunkCounts, openChunkQueue, pendingChunks } from './chunk-queue.js';
import { runChunk } from './chunk-runner.js';
import { checkModelIdentities } from './model-identity.js';
import type { RedisClient } from './redis-connection.js';
import { engineFingerprint, pinFingerprint } from './run-fingerprint.js';
import { runKeys } from './run-keys.js';
import { storeChunkResults } from './run-results.js';
import { readRunSpec, type ChunkJob, type RunSpec } from './run-spec.js';

export interface WorkerSettings {
  /** Chunks run at once by this worker (one engine shared). */
  concurrency: number;
  /** How long a taken chunk stays locked without a renewal (ms): a dead worker's chunk is free again after it. */
  lockDurationMs: number;
  /** How often this worker looks for stalled chunks (ms). */
  stalledIntervalMs: number;
  /** Times a chunk may be taken over from a dead worker before it is failed. */
  maxStalledCount: number;
  /** Stop once the run has no chunk left to run (instead of waiting for more). */
  untilDone: boolean;
  /** Stops the worker (after the chunks in hand are finished). */
  signal?: AbortSignal;
}

export const DEFAULT_LOCK_DURATION_MS = 60_000;
export const DEFAULT_STALLED_INTERVAL_MS = 30_000;
export const DEFAULT_MAX_STALLED_COUNT = 2;

/** How often a worker checks whether its run is done (untilDone) or it was told to stop. */
const POLL_MS = 500;

/** This worker's name in BullMQ (job.processedBy) and in messages: host and process id. */
export function workerName(): string {
  return `${os.hostname()}:${process.pid}`;
}

/** Sets up the run's engine: the models' identities checked, the engine opened and its fingerprint pinned or checked. */
export async function openRunEngine(redis: RedisClient, run: string, cli: CliContext): Promise<{ spec: RunSpec; engine: PredictEngine }> {
  const spec = await readRunSpec(redis, run);
  await checkModelIdentities(run, spec.engine, spec.models);
  const options = { ...spec.engine, exif: spec.run.exif, allowSvg: spec.run.allowSvg, batchSize: String(spec.run.batchSize) } as EngineCliOptions;
  const engine = await PredictEngine.open(engineOptionsFrom(options, cli));
  try {
    await pinFingerprint(redis, run, engineFingerprint(engine, spec), workerName());
  } catch (err) {
    engine.close();
    throw err;
  }
  return { spec, engine };
}

/** The first few failures of a chunk, for the reason it is failed with. */
function poisonedReason(job: ChunkJob, failures: { id: string; reason: string }[]): string {
  const shown = failures.slice(0, 3).map((f) => `${f.id}: ${f.reason}`).join('; ');
  return `every image of chunk ${job.chunk} (${job.ids.length}) could not be read (a poisoned chunk): ${shown}${failures.length > 3 ? `; and ${failures.length - 3} more` : ''}`;
}

/** Serves run `run` until stopped (or done, with untilDone). Resolves to the number of chunks this worker finished. */
export async function serveRun(redis: RedisClient, run: string, cli: CliContext, settings: WorkerSettings): Promise<number> {
  const keys = runKeys(run);
  const { spec, engine } = await openRunEngine(redis, run, cli);
  const name = workerName();
  let finished = 0;
  const processor = async (job: Job<ChunkJob>) => {
    const t0 = performance.now();
    await redis.hsetnx(keys.clock, 'started', String(Date.now()));
    const results = await runChunk(engine, spec, job.data, cli);
    await storeChunkResults(redis, keys, results);
    await redis.hset(keys.clock, 'last', String(Date.now()));
    const failures = results.filter((r) => r.failure).map((r) => ({ id: r.id, reason: r.failure!.reason }));
    const seconds = (performance.now() - t0) / 1000;
    if (failures.length === results.length) throw new Img2PromptError(undefined, poisonedReason(job.data, failures));
    cli.err(`run ${run}: chunk ${job.data.chunk + 1}/${spec.chunks}: ${results.length} images in ${seconds.toFixed(2)} s${failures.length > 0 ? ` (${failures.length} unreadable)` : ''}\n`);
    return { images: results.length, unreadable: failures.length, seconds };
  };
  const worker = new Worker<ChunkJob>(keys.queue, processor, {
    connection: redis,
    concurrency: settings.concurrency,
    lockDuration: settings.lockDurationMs,
    stalledInterval: settings.stalledIntervalMs,
    maxStalledCount: settings.maxStalledCount,
    name,
    autorun: false,
  });
  worker.on('completed', () => finished++);
  worker.on('failed', (job, err) => {
    if (!job) return;
    const last = job.attemptsMade >= (job.opts.attempts ?? 1);
    cli.err(`run ${run}: chunk ${job.data.chunk + 1}/${spec.chunks} failed (attempt ${job.attemptsMade} of ${job.opts.attempts ?? 1}${last ? ', now in the failed list' : ', will be retried'}): ${errorMessage(err)}\n`);
  });
  // Connection trouble (Redis restarting) is retried by ioredis and BullMQ; say it once per kind.
  const said = new Set<string>();
  worker.on('error', (err) => {
    const text = errorMessage(err);
    if (said.has(text)) return;
    said.add(text);
    cli.err(`run ${run}: worker ${name}: ${text}\n`);
  });
  const running = worker.run();
  cli.err(`worker ${name} ready for run ${run} (${spec.images} images in ${spec.chunks} chunks; members: ${engine.members.join(', ')})\n`);
  const queue = openChunkQueue(redis, run);
  try {
    for (;;) {
      if (settings.signal?.aborted) break;
      if (settings.untilDone) {
        const counts = await chunkCounts(queue).catch(() => undefined);
        if (counts && pendingChunks(counts) === 0) break;
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  } finally {
    // Finishes the chunks in hand; the ones not taken stay for other workers.
    await worker.close();
    await running.catch(() => undefined);
    await queue.close();
    engine.close();
  }
  return finished;
}

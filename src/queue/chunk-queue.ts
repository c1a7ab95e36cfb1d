/**
 * The BullMQ side of a run: its queue (one per run), the job options every chunk gets (attempts with
 * exponential backoff; finished and failed jobs kept, since status and collect read them), and the job
 * counts a run's progress is judged by.
 */
import { Queue, type JobsOptions } from 'bullmq';
import type { RedisClient } from './redis-connection.js';
import { runKeys } from './run-keys.js';
import type { ChunkJob } from './run-spec.js';

export const DEFAULT_ATTEMPTS = 3;
export const DEFAULT_BACKOFF_MS = 10_000;

export function openChunkQueue(redis: RedisClient, run: string): Queue<ChunkJob> {
  return new Queue<ChunkJob>(runKeys(run).queue, { connection: redis });
}

export function chunkJobOptions(chunk: number, attempts: number, backoffMs: number): JobsOptions {
  return {
    // A fixed id per chunk: pushing the same run again adds no second job for a chunk.
    jobId: `chunk-${chunk}`,
    attempts,
    backoff: { type: 'exponential', delay: backoffMs },
    removeOnComplete: false,
    removeOnFail: false,
  };
}

export interface ChunkCounts {
  completed: number;
  /** Waiting to be taken (prioritized included; a paused queue's too). */
  waiting: number;
  active: number;
  /** Waiting for a retry's backoff to pass. */
  delayed: number;
  failed: number;
}

export async function chunkCounts(queue: Queue<ChunkJob>): Promise<ChunkCounts> {
  const c = await queue.getJobCounts('completed', 'waiting', 'prioritized', 'active', 'delayed', 'failed', 'waiting-children');
  return {
    completed: c.completed ?? 0,
    waiting: (c.waiting ?? 0) + (c.prioritized ?? 0) + (c['waiting-children'] ?? 0),
    active: c.active ?? 0,
    delayed: c.delayed ?? 0,
    failed: c.failed ?? 0,
  };
}

/** Chunks still to be run (taken, waiting, or waiting for a retry). */
export function pendingChunks(c: ChunkCounts): number {
  return c.waiting + c.active + c.delayed;
}

export interface FailedChunk {
  chunk: number;
  images: number;
  attempts: number;
  reason: string;
}

/** The run's failed list, in chunk order. */
export async function failedChunks(queue: Queue<ChunkJob>): Promise<FailedChunk[]> {
  const jobs = await queue.getFailed(0, -1);
  return jobs
    .filter((j) => j?.data)
    .map((j) => ({ chunk: j.data.chunk, images: j.data.ids.length, attempts: j.attemptsMade, reason: j.failedReason ?? 'unknown' }))
    .sort((a, b) => a.chunk - b.chunk);
}

/** Moves the run's failed chunks back to waiting (after the cause was fixed); resolves to how many there were. */
export async function retryFailedChunks(queue: Queue<ChunkJob>): Promise<number> {
  const failed = await queue.getFailedCount();
  if (failed > 0) await queue.retryJobs({ state: 'failed' });
  return failed;
}

/**
 * Where a run stands: its chunks by state (BullMQ's counts), its images done and unreadable (the results
 * hashes), the failed list with reasons, and the rate since the first chunk started with the time left
 * at that rate.
 */
import { chunkCounts, failedChunks, openChunkQueue, pendingChunks, type ChunkCounts, type FailedChunk } from './chunk-queue.js';
import type { RedisClient } from './redis-connection.js';
import { runKeys } from './run-keys.js';
import { countResults } from './run-results.js';
import { readRunSpec } from './run-spec.js';

export interface RunStatus {
  run: string;
  images: number;
  chunks: number;
  counts: ChunkCounts;
  /** Images with a result (unreadable ones included). */
  imagesDone: number;
  /** Images that could not be read (they have the fallback vector). */
  imagesUnreadable: number;
  failed: FailedChunk[];
  /** Images per second since the first chunk started; null before two moments are known. */
  imagesPerSecond: number | null;
  /** Seconds left at that rate; 0 when nothing is left to run; null when unknown. */
  etaSeconds: number | null;
  /** No chunk waiting, running or waiting for a retry. */
  finished: boolean;
}

export async function runStatus(redis: RedisClient, run: string): Promise<RunStatus> {
  const spec = await readRunSpec(redis, run);
  const keys = runKeys(run);
  const queue = openChunkQueue(redis, run);
  try {
    const [counts, failed, results, clock] = await Promise.all([chunkCounts(queue), failedChunks(queue), countResults(redis, keys), redis.hmget(keys.clock, 'started', 'last')]);
    const started = clock[0] === null ? undefined : Number(clock[0]);
    const last = clock[1] === null ? undefined : Number(clock[1]);
    const finished = pendingChunks(counts) === 0;
    const seconds = started !== undefined && last !== undefined ? (last - started) / 1000 : 0;
    const imagesPerSecond = seconds > 0 ? results.done / seconds : null;
    const left = spec.images - results.done;
    const etaSeconds = finished || left <= 0 ? 0 : imagesPerSecond ? left / imagesPerSecond : null;
    return {
      run, images: spec.images, chunks: spec.chunks, counts, imagesDone: results.done, imagesUnreadable: results.unreadable, failed, imagesPerSecond, etaSeconds, finished,
    };
  } finally {
    await queue.close();
  }
}

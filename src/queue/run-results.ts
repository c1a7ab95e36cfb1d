/**
 * A run's results in Redis: one hash field per image id, written per chunk in one HSET (atomic: a chunk's
 * results are all there or none), so a chunk computed twice (a stalled job taken over, a retry) leaves
 * exactly one result per image. The unreadable images are also kept in a second hash, for `status`.
 */
import { decodeImageResult, encodeImageResult, type ImageResult } from './image-result.js';
import type { RedisClient } from './redis-connection.js';
import type { RunKeys } from './run-keys.js';

/** Ids read from Redis per round trip. */
const PAGE = 2000;

export async function storeChunkResults(redis: RedisClient, keys: RunKeys, results: readonly ImageResult[]): Promise<void> {
  if (results.length === 0) return;
  const fields = results.flatMap((r) => [r.id, encodeImageResult(r)]);
  const failed = results.filter((r) => r.failure).flatMap((r) => [r.id, `${r.failure!.file}\t${r.failure!.reason}`]);
  const read = results.filter((r) => !r.failure).map((r) => r.id);
  const tx = redis.multi().hset(keys.results, ...fields);
  if (failed.length > 0) tx.hset(keys.failures, ...failed);
  if (read.length > 0) tx.hdel(keys.failures, ...read);
  await tx.exec();
}

/** The run's ids in input order, read in pages. */
export async function* runIds(redis: RedisClient, keys: RunKeys): AsyncGenerator<string[]> {
  for (let start = 0; ; start += PAGE) {
    const page = await redis.lrange(keys.ids, start, start + PAGE - 1);
    if (page.length === 0) return;
    yield page;
    if (page.length < PAGE) return;
  }
}

/** The results of `ids` (undefined where an image has none yet). */
export async function readResults(redis: RedisClient, keys: RunKeys, ids: readonly string[]): Promise<(ImageResult | undefined)[]> {
  if (ids.length === 0) return [];
  const stored = await redis.hmgetBuffer(keys.results, ...ids);
  return stored.map((b, i) => (b === null ? undefined : decodeImageResult(ids[i]!, b, keys.results)));
}

export async function countResults(redis: RedisClient, keys: RunKeys): Promise<{ done: number; unreadable: number }> {
  const [done, unreadable] = await Promise.all([redis.hlen(keys.results), redis.hlen(keys.failures)]);
  return { done, unreadable };
}

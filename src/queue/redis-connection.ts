/**
 * The Redis connection of the queue commands, from `--redis URL` (redis://[user:password@]host:port[/db],
 * or rediss:// for TLS). BullMQ needs `maxRetriesPerRequest: null` on the connections its workers block
 * on; the same setting makes our own commands wait through a Redis restart instead of failing a chunk
 * that was already computed.
 */
import { Redis } from 'ioredis';
import { Img2PromptError } from '../util/errors.js';

export type RedisClient = Redis;

export function parseRedisUrl(url: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Img2PromptError(undefined, `--redis must be a URL like redis://host:6379, got ${JSON.stringify(url)}`);
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new Img2PromptError(undefined, `--redis must be a redis:// or rediss:// URL, got ${JSON.stringify(url)}`);
  }
  return parsed;
}

export interface ConnectOptions {
  /**
   * Give up on the first connection after this many ms (a command run by hand should say "cannot
   * reach Redis" rather than wait forever); a worker passes none and keeps retrying.
   */
  connectTimeoutMs?: number;
}

/** Opens a connection and waits until Redis answers. */
export async function connectRedis(url: string, options: ConnectOptions = {}): Promise<RedisClient> {
  parseRedisUrl(url);
  const client = new Redis(url, { maxRetriesPerRequest: null, lazyConnect: true });
  // Without a listener ioredis prints every failed reconnect; the command reports what matters itself.
  client.on('error', () => {});
  const ready = client.connect();
  if (options.connectTimeoutMs === undefined) {
    await ready;
    return client;
  }
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Img2PromptError(url, `cannot reach Redis within ${options.connectTimeoutMs! / 1000} s (is redis-server running there?)`, { code: 'RUNTIME_FAILED' })), options.connectTimeoutMs);
  });
  try {
    await Promise.race([ready, timeout]);
  } catch (err) {
    client.disconnect();
    throw err instanceof Img2PromptError ? err : new Img2PromptError(url, `cannot reach Redis: ${(err as Error).message}`, { code: 'RUNTIME_FAILED', cause: err });
  } finally {
    clearTimeout(timer);
  }
  return client;
}

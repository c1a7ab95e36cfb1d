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
   * Give up after this many ms without a connection (a command run by hand should say "cannot reach
   * Redis" rather than wait forever); without it (a worker) the connection is retried until it is up.
   */
  connectTimeoutMs?: number;
  /** Told once, with the reason, when the first try fails and the connection is retried. */
  onRetry?(reason: string): void;
}

/** Opens a connection and waits until Redis answers (ioredis reconnects by itself meanwhile). */
export async function connectRedis(url: string, options: ConnectOptions = {}): Promise<RedisClient> {
  parseRedisUrl(url);
  const client = new Redis(url, { maxRetriesPerRequest: null });
  let lastError = 'no answer';
  let told = false;
  // Without a listener ioredis prints every failed reconnect; the command reports what matters itself.
  const onError = (err: Error) => {
    lastError = err.message || String(err);
    if (!told) options.onRetry?.(lastError);
    told = true;
  };
  client.on('error', onError);
  let timer: NodeJS.Timeout | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      client.once('ready', () => resolve());
      if (options.connectTimeoutMs !== undefined) {
        timer = setTimeout(
          () => reject(new Img2PromptError(url, `cannot reach Redis within ${options.connectTimeoutMs! / 1000} s (${lastError}); is redis-server running there?`, { code: 'RUNTIME_FAILED' })),
          options.connectTimeoutMs,
        );
      }
    });
  } catch (err) {
    client.disconnect();
    throw err;
  } finally {
    clearTimeout(timer);
  }
  return client;
}

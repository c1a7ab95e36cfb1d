/**
 * `--shard I/N`: which images one of N machines takes. An image belongs to shard
 * `1 + (first 8 bytes of sha256(id), big-endian) mod N`, a function of its id alone, so every machine
 * agrees on the split whatever order or listing its inputs came in, and the N parts together hold each
 * image exactly once (merge.ts puts them back together).
 */
import { createHash } from 'node:crypto';
import { Img2PromptError } from '../util/errors.js';

/** Shard `index` (1-based) of `count`. */
export interface Shard {
  index: number;
  count: number;
}

/** `"2/3"` → `{ index: 2, count: 3 }`, or a one-line error naming `option`. */
export function parseShard(text: string, option = '--shard'): Shard {
  const m = /^([0-9]+)\/([0-9]+)$/.exec(text.trim());
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!m || !Number.isSafeInteger(count) || count < 1 || index < 1 || index > count) {
    throw new Img2PromptError(undefined, `${option} must be I/N with 1 <= I <= N (e.g. 2/3 for the second of three shards), got "${text}"`);
  }
  return { index, count };
}

/** The shard (1-based) of `count` that image `id` belongs to. */
export function shardOf(id: string, count: number): number {
  const digest = createHash('sha256').update(id, 'utf8').digest();
  return Number(digest.readBigUInt64BE(0) % BigInt(count)) + 1;
}

/** True when image `id` belongs to `shard`. */
export function inShard(id: string, shard: Shard): boolean {
  return shardOf(id, shard.count) === shard.index;
}

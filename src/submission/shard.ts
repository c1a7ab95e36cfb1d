/**
 * `--shard I/N`: which images one of N machines takes. The listing is cut into blocks of `block`
 * consecutive images (the command's batch size), and a block belongs to shard
 * `1 + (first 8 bytes of sha256(id of its first image), big-endian) mod N`. Every machine that lists
 * the same inputs agrees on the split, the N parts together hold each image exactly once (merge.ts
 * puts them back together), and each shard encodes its images in exactly the batches an unsharded
 * run with the same batch size would: a tower's float results depend, in the last bits, on which
 * other images share the batch, so a split by each image's own hash would make a merged submission
 * differ from an unsharded one in a few values by ~1e-8. With blocks of 1 the split is by each id.
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

/** True when image `id` belongs to `shard` (blocks of one image). */
export function inShard(id: string, shard: Shard): boolean {
  return shardOf(id, shard.count) === shard.index;
}

/** For each of `ids` (in listing order), whether its block of `block` consecutive images belongs to `shard`. */
export function shardMembership(ids: readonly string[], shard: Shard, block: number): boolean[] {
  if (!Number.isSafeInteger(block) || block < 1) throw new RangeError(`shard block must be a positive integer, got ${block}`);
  return ids.map((_, i) => shardOf(ids[i - (i % block)]!, shard.count) === shard.index);
}

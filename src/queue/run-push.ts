/**
 * `queue push`: records a run (its description, its ids in input order) and adds its chunks as jobs.
 * The description is written last, so a run whose description exists has all its ids; pushing the same
 * run again (after a push that was cut off) adds only the chunks missing from the queue, and pushing
 * other inputs or options under a used name is refused.
 */
import { Img2PromptError } from '../util/errors.js';
import { chunkJobOptions, openChunkQueue } from './chunk-queue.js';
import type { RedisClient } from './redis-connection.js';
import { RUNS_KEY, runKeys } from './run-keys.js';
import { inputsDigest, RUN_SPEC_VERSION, type ChunkJob, type RunSpec } from './run-spec.js';

/** Chunks added per round trip. */
const ADD_PAGE = 500;

export const DEFAULT_CHUNK_SIZE = 64;

export interface PushRequest extends Omit<RunSpec, 'formatVersion' | 'pushedAt' | 'images' | 'chunks' | 'inputsDigest' | 'gapSample'> {
  ids: string[];
  /** Absolute paths or URLs, paired with ids. */
  files: string[];
  /** The whole list when `ids` is a shard of it: the gap sample is drawn from it, as predict --shard does. */
  unsharded?: { files: string[]; ids: string[] };
  attempts: number;
  backoffMs: number;
}

export interface PushResult {
  spec: RunSpec;
  /** True when the run existed already (the same inputs and options) and only missing chunks were added. */
  existed: boolean;
}

/** The first batches of the list, which a single predict run samples for the modality gap. */
function gapSampleOf(list: { files: string[]; ids: string[] }, gapImages: number, batchSize: number): RunSpec['gapSample'] {
  const n = list.ids.length;
  const sampled = Math.min(n, Math.ceil(Math.min(n, gapImages) / batchSize) * batchSize);
  return { files: list.files.slice(0, sampled), ids: list.ids.slice(0, sampled) };
}

/** What must match for a second push to continue the first one. */
function sameRun(a: RunSpec, b: RunSpec): boolean {
  const pick = (s: RunSpec) => JSON.stringify([s.inputsDigest, s.chunkSize, s.engine, s.run, s.fetch, s.models]);
  return pick(a) === pick(b);
}

export async function pushRun(redis: RedisClient, req: PushRequest, gapImages: number): Promise<PushResult> {
  const keys = runKeys(req.name);
  const { ids, files, unsharded, attempts, backoffMs, ...rest } = req;
  const spec: RunSpec = {
    ...rest,
    formatVersion: RUN_SPEC_VERSION,
    pushedAt: new Date().toISOString(),
    images: ids.length,
    chunks: Math.ceil(ids.length / req.chunkSize),
    inputsDigest: inputsDigest(ids, files),
    gapSample: gapSampleOf(unsharded ?? { files, ids }, gapImages, req.run.batchSize),
  };
  const earlierText = await redis.get(keys.spec);
  let existed = false;
  if (earlierText !== null) {
    const earlier = JSON.parse(earlierText) as RunSpec;
    if (!sameRun(earlier, spec)) {
      throw new Img2PromptError(undefined, `a run "${req.name}" with other inputs or options was pushed at ${earlier.pushedAt}; push this one under another --run name`);
    }
    existed = true;
    spec.pushedAt = earlier.pushedAt;
  } else {
    await redis.del(keys.ids);
    for (let i = 0; i < ids.length; i += ADD_PAGE * 4) await redis.rpush(keys.ids, ...ids.slice(i, i + ADD_PAGE * 4));
    if ((await redis.set(keys.spec, JSON.stringify(spec), 'NX')) === null) {
      throw new Img2PromptError(undefined, `run "${req.name}" was pushed by someone else meanwhile; push this one under another --run name`);
    }
  }
  await redis.sadd(RUNS_KEY, req.name);
  const queue = openChunkQueue(redis, req.name);
  try {
    for (let first = 0; first < spec.chunks; first += ADD_PAGE) {
      const jobs = [];
      for (let k = first; k < Math.min(spec.chunks, first + ADD_PAGE); k++) {
        const at = k * req.chunkSize;
        const data: ChunkJob = { run: req.name, chunk: k, ids: ids.slice(at, at + req.chunkSize), files: files.slice(at, at + req.chunkSize) };
        jobs.push({ name: 'chunk', data, opts: chunkJobOptions(k, attempts, backoffMs) });
      }
      await queue.addBulk(jobs);
    }
  } finally {
    await queue.close();
  }
  return { spec, existed };
}

/**
 * `queue collect`: a finished run's results, read in the run's input order, written by the same writers
 * and checks as `predict` (the validated submission, the prompts, captions and nearest-prompt CSVs), so
 * the files are the bytes a single-machine `predict` of the same inputs writes. A run that is not
 * finished, or whose failed chunks left images without a result, is refused before anything is written.
 */
import type { ImageFailure } from '../image/batch-loader.js';
import { writeValidatedSubmission } from '../predict/submission-output.js';
import type { PromptRow } from '../submission/prompts-csv.js';
import type { NearestRow } from '../predict/nearest-csv.js';
import { EMBEDDING_DIM } from '../submission/submission-csv.js';
import { Img2PromptError } from '../util/errors.js';
import { chunkCounts, failedChunks, openChunkQueue, pendingChunks, type FailedChunk } from './chunk-queue.js';
import type { RedisClient } from './redis-connection.js';
import { runKeys } from './run-keys.js';
import { readResults, runIds } from './run-results.js';
import { readRunSpec } from './run-spec.js';

export interface CollectedRun {
  /** Image ids in the run's order. */
  ids: string[];
  vectors: Float32Array;
  prompts: PromptRow[];
  captions: { imgId: string; caption: string }[];
  nearest: NearestRow[];
  /** Images that could not be read (they have the fallback vector). */
  failures: ImageFailure[];
  /** Inputs skipped while listing at push (never read, no row). */
  skipped: ImageFailure[];
  /** The run's failed list: chunks that failed after their last attempt (their images' results, if any, are used). */
  failed: FailedChunk[];
}

/** Reads the results of finished run `run`; throws (naming the chunks) if it is not finished or lacks results. */
export async function collectRun(redis: RedisClient, run: string): Promise<CollectedRun> {
  const spec = await readRunSpec(redis, run);
  const keys = runKeys(run);
  const queue = openChunkQueue(redis, run);
  let failed: FailedChunk[];
  try {
    const counts = await chunkCounts(queue);
    if (pendingChunks(counts) > 0) {
      throw new Img2PromptError(undefined, `run "${run}" is not finished: ${counts.waiting} chunks waiting, ${counts.active} running, ${counts.delayed} waiting for a retry (see \`img2prompt queue status --run ${run}\`)`);
    }
    failed = await failedChunks(queue);
  } finally {
    await queue.close();
  }
  const out: CollectedRun = { ids: [], vectors: new Float32Array(spec.images * EMBEDDING_DIM), prompts: [], captions: [], nearest: [], failures: [], skipped: spec.skipped, failed };
  const missing: string[] = [];
  for await (const page of runIds(redis, keys)) {
    const results = await readResults(redis, keys, page);
    results.forEach((r, i) => {
      const id = page[i]!;
      if (!r) {
        missing.push(id);
        return;
      }
      const row = out.ids.length;
      out.ids.push(id);
      if (row < spec.images) out.vectors.set(r.vector, row * EMBEDDING_DIM);
      if (r.failure) out.failures.push(r.failure);
      else if (r.prompt) out.prompts.push({ imgId: id, prompt: r.prompt });
      if (r.caption !== null) out.captions.push({ imgId: id, caption: r.caption });
      if (r.nearest) out.nearest.push({ imgId: id, prompt: r.nearest.text, similarity: r.nearest.similarity });
    });
  }
  if (missing.length > 0) {
    const chunks = failed.length > 0 ? `; failed chunks: ${failed.slice(0, 5).map((f) => `${f.chunk + 1} (${f.reason})`).join('; ')}${failed.length > 5 ? `; and ${failed.length - 5} more` : ''}` : '';
    throw new Img2PromptError(undefined, `run "${run}": ${missing.length} of ${spec.images} images have no result (${missing.slice(0, 5).map((id) => JSON.stringify(id)).join(', ')}${missing.length > 5 ? ', ...' : ''})${chunks}`);
  }
  if (out.ids.length !== spec.images) throw new Img2PromptError(undefined, `run "${run}": its ids list holds ${out.ids.length} ids, its description ${spec.images}`, { code: 'FILE_INVALID' });
  return out;
}

/** Writes the collected submission (validated against the run's ids, as predict does). */
export async function writeCollectedSubmission(output: string, c: CollectedRun): Promise<void> {
  await writeValidatedSubmission(output, c.ids, c.vectors, c.ids);
}

/**
 * One chunk of a distributed run through the predict engine, giving each of the chunk's images the very
 * result a single `predict` of the whole run gives it. The only state a predict run carries from one
 * image to the next is the modality gap of the map member, estimated from the run's first images; so,
 * as `predict --shard` does, a chunk is run after that sample (the images are encoded, their results
 * dropped), and every worker estimates the same gap. A worker estimates it once, with its first chunk,
 * and runs its later chunks of the run alone with that gap (the same bits: the same sample in the same
 * batches). Without the map member there is no gap and every chunk runs alone.
 */
import { ImageListFile } from '../image/image-list-file.js';
import { inputImageId } from '../cli/input-images.js';
import type { CliContext } from '../cli/context.js';
import { downloadUrlImages } from '../cli/url-inputs.js';
import type { PredictEngine } from '../predict/predict.js';
import type { ImageResult } from './image-result.js';
import type { ChunkJob, RunSpec } from './run-spec.js';

/** The inputs to run for `job`: the gap sample first (with the map member), then the chunk's others. */
export function chunkRunInputs(spec: RunSpec, job: ChunkJob, withGapSample: boolean): { files: string[]; ids: string[] } {
  if (!withGapSample) return { files: [...job.files], ids: [...job.ids] };
  const files = [...spec.gapSample.files];
  const ids = [...spec.gapSample.ids];
  const taken = new Set(ids);
  job.ids.forEach((id, i) => {
    if (!taken.has(id)) {
      files.push(job.files[i]!);
      ids.push(id);
    }
  });
  return { files, ids };
}

/** The gap each engine's run estimated with its first chunk (a worker opens one engine per run). */
const gapOfEngine = new WeakMap<PredictEngine, Float32Array>();

/** Runs `job` on `engine` (opened with the run's options) → one result per image of the chunk, in chunk order. */
export async function runChunk(engine: PredictEngine, spec: RunSpec, job: ChunkJob, cli: CliContext): Promise<ImageResult[]> {
  const known = gapOfEngine.get(engine);
  const inputs = chunkRunInputs(spec, job, engine.map !== undefined && known === undefined);
  const wanted = new Set(job.ids);
  const byId = new Map<string, ImageResult>();
  const list = await ImageListFile.of(inputs.files, inputImageId);
  const downloads = await downloadUrlImages(cli, list, spec.fetch).catch(async (err: unknown) => {
    await list.close();
    throw err;
  });
  try {
    const { batchSize, gapImages, exif, allowSvg } = spec.run;
    const remember = (gap: Float32Array | null) => {
      if (gap) gapOfEngine.set(engine, gap);
    };
    for await (const r of engine.run(downloads.list, { batchSize, gapImages, exif, allowSvg, ...(known ? { modalityGap: known } : { onModalityGap: remember }) })) {
      if (!wanted.has(r.id)) continue;
      byId.set(r.id, {
        id: r.id,
        vector: r.vector,
        prompt: r.failure === undefined ? r.prompt : null,
        caption: r.caption,
        nearest: r.nearestPrompt,
        ...(r.failure !== undefined ? { failure: downloads.reportAs({ file: r.file, reason: r.failure }) } : {}),
      });
    }
  } finally {
    await downloads.close();
    await list.close();
  }
  return job.ids.map((id) => {
    const r = byId.get(id);
    if (!r) throw new Error(`internal: the engine gave no result for image "${id}" of chunk ${job.chunk}`);
    return r;
  });
}

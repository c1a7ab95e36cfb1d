import type { ImageFailure } from '../image/batch-loader.js';
import { imageIdOf } from '../image/image-id.js';
import { Img2PromptError, errorMessage } from '../util/errors.js';
import { PredictCheckpoint, type RunDescription } from './checkpoint.js';

/**
 * The CLIP image embeddings of the modality-gap sample of a checkpointed predict run, kept beside the
 * checkpoint (`<checkpoint>.sample`) and fsync'd batch by batch as they are encoded.
 *
 * Why this design: the map member needs the gap before its first image, and the gap needs the first
 * `gapImages` images (default 512) through CLIP, so no image is finished, and nothing reaches the
 * checkpoint, until they are all encoded: minutes on a large CLIP. Keeping their embeddings lets a run
 * killed in that phase resume without encoding them again. They are stored bit-exact and batch k is
 * always the same files, so the gap and every member on those batches come out with the same bits as in
 * an uninterrupted run (a gap from a smaller first sample would only shorten the window, and change the
 * estimate). Memory stays bounded by the sample (gapImages × CLIP dim floats), which the run holds anyway
 * to avoid encoding the sampled batches twice.
 *
 * The file uses the checkpoint's format (one JSON line per image; a torn last line is dropped on load)
 * under its own fingerprint: the run's, plus what the file holds.
 */

const MEMBER = 'clip';

export function sampleStoreFor(checkpoint: string): string {
  return `${checkpoint}.sample`;
}

/** The batch of `files` as stored: the files that loaded, their embeddings and the failures. */
export interface StoredBatch {
  loaded: string[];
  failures: ImageFailure[];
  /** [loaded.length, clipDim] unit rows. */
  embeds: Float32Array;
}

export class GapSampleStore {
  private constructor(
    private readonly cp: PredictCheckpoint,
    readonly dim: number,
  ) {}

  get file(): string {
    return this.cp.file;
  }

  /** Images stored so far (loaded or failed). */
  get size(): number {
    return this.cp.done.size;
  }

  /**
   * Opens the store of `run`. With `resume` its batches are read back; a store that cannot be used (from
   * another run, damaged) is replaced, with `onNotice` told why: it only saves work, and what it held can
   * be computed again with the same bits.
   */
  static async open(file: string, run: RunDescription, options: { resume: boolean; clipDim: number; onNotice?(message: string): void }): Promise<GapSampleStore> {
    const described: RunDescription = { ...run, options: { ...run.options, contents: 'CLIP image embeddings of the modality-gap sample', clipDim: options.clipDim } };
    // Appends are flushed once per batch (add), so the chunk size never triggers a write of its own.
    const open = (resume: boolean) => PredictCheckpoint.open(file, described, { resume, dim: options.clipDim, chunkSize: Number.MAX_SAFE_INTEGER });
    let cp: PredictCheckpoint;
    try {
      cp = await open(options.resume);
    } catch (err) {
      if (!options.resume || !(err instanceof Img2PromptError)) throw err;
      options.onNotice?.(`ignoring the stored gap sample (${errorMessage(err)}); its images are encoded again`);
      cp = await open(false);
    }
    return new GapSampleStore(cp, options.clipDim);
  }

  /** The stored batch of `files`, or undefined unless every one of them is stored. */
  batch(files: readonly string[]): StoredBatch | undefined {
    const records = files.map((f) => this.cp.done.get(imageIdOf(f)));
    if (records.some((r) => r === undefined)) return undefined;
    const loaded: string[] = [];
    const failures: ImageFailure[] = [];
    const rows: Float32Array[] = [];
    records.forEach((r, i) => {
      const v = r!.members[MEMBER];
      if (v) {
        loaded.push(files[i]!);
        rows.push(v);
      } else {
        failures.push({ file: files[i]!, reason: typeof r!.meta?.failure === 'string' ? r!.meta.failure : 'could not be read' });
      }
    });
    const embeds = new Float32Array(rows.length * this.dim);
    rows.forEach((v, i) => embeds.set(v, i * this.dim));
    return { loaded, failures, embeds };
  }

  /** Stores one encoded batch (`files` in order) and makes it durable before returning. */
  async add(files: readonly string[], batch: StoredBatch): Promise<void> {
    const rowOf = new Map(batch.loaded.map((f, i) => [f, i]));
    const failureOf = new Map(batch.failures.map((f) => [f.file, f.reason]));
    for (const file of files) {
      const r = rowOf.get(file);
      const id = imageIdOf(file);
      if (r === undefined) await this.cp.add({ id, members: {}, meta: { failure: failureOf.get(file) ?? 'could not be read' } });
      else await this.cp.add({ id, members: { [MEMBER]: batch.embeds.slice(r * this.dim, (r + 1) * this.dim) } });
    }
    await this.cp.flush();
  }

  close(): Promise<void> {
    return this.cp.close();
  }
}

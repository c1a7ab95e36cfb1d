import { Img2PromptError, errorMessage } from '../util/errors.js';
import { PredictCheckpoint, type RunDescription } from './checkpoint.js';
import type { BatchOutcome } from './records.js';

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
    return this.cp.size;
  }

  /**
   * Opens the store of `run`. With `resume` its batches are read back; a store that cannot be used (from
   * another run, damaged) is replaced, with `onNotice` told why: it only saves work, and what it held can
   * be computed again with the same bits.
   */
  static async open(file: string, run: RunDescription, options: { resume: boolean; clipDim: number; onNotice?(message: string): void }): Promise<GapSampleStore> {
    // The inputs' contents are the checkpoint's to check (it opens first and refuses changed images); the store keeps none.
    const described: RunDescription = { ...run, contents: undefined, options: { ...run.options, contents: 'CLIP image embeddings of the modality-gap sample', clipDim: options.clipDim } };
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

  /** The stored batch of the images `ids` (a batch, in order), or undefined unless every one of them is stored. */
  async batch(ids: readonly string[]): Promise<BatchOutcome | undefined> {
    if (!ids.every((id) => this.cp.has(id))) return undefined;
    const records = await this.cp.readMany(ids);
    if (records.some((r) => r === undefined)) return undefined;
    const rows: number[] = [];
    const reasons: (string | undefined)[] = [];
    const vectors: Float32Array[] = [];
    for (const r of records) {
      const v = r!.members[MEMBER];
      if (v) {
        rows.push(vectors.length);
        reasons.push(undefined);
        vectors.push(v);
      } else {
        rows.push(-1);
        reasons.push(r!.meta?.failure ?? 'could not be read');
      }
    }
    const embeds = new Float32Array(vectors.length * this.dim);
    vectors.forEach((v, i) => embeds.set(v, i * this.dim));
    return { rows, reasons, embeds };
  }

  /** Stores one encoded batch (the images `ids`, in order) and makes it durable before returning. */
  async add(ids: readonly string[], batch: BatchOutcome): Promise<void> {
    for (let i = 0; i < ids.length; i++) {
      const r = batch.rows[i]!;
      const id = ids[i]!;
      if (r < 0) await this.cp.add({ id, members: {}, meta: { failure: batch.reasons[i] ?? 'could not be read' } });
      else await this.cp.add({ id, members: { [MEMBER]: batch.embeds.slice(r * this.dim, (r + 1) * this.dim) } });
    }
    await this.cp.flush();
  }

  close(): Promise<void> {
    return this.cp.close();
  }
}

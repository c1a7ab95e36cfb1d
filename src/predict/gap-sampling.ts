/**
 * The modality gap of a predict run with the map member: the direction from the CLIP centre of the
 * first `gapImages` images to the bank's text centre, estimated before the first image is handed out.
 * The sampled batches are kept for the run (so their images are not encoded twice) and, in a
 * checkpointed run, stored as they are encoded (gap-sample-store.ts) and the finished gap written next
 * to the checkpoint (gap-file.ts), so a resumed run uses the very same gap.
 */
import { Img2PromptError } from '../util/errors.js';
import type { PredictCheckpoint, RunDescription } from './checkpoint.js';
import type { PredictEngine } from './engine.js';
import { gapFileFor, readGapFile, writeGapFile, type SavedGap } from './gap-file.js';
import { GapSampleStore, sampleStoreFor } from './gap-sample-store.js';
import { estimateModalityGap, UnitMean } from './modality-gap.js';
import { loadedCount, type BatchOutcome } from './records.js';
import type { PredictPhase } from './types.js';

/** Batch k of a run, encoded (or read back from the gap sample). */
export type RunBatch = BatchOutcome & { k: number };

export interface GapSampling {
  engine: PredictEngine;
  cp: PredictCheckpoint | undefined;
  run: RunDescription;
  /** True when the run resumes (a gap file of the checkpoint is then used as is). */
  resume: boolean;
  total: number;
  batchSize: number;
  gapImages: number;
  batchIds(k: number): string[];
  /** Batches the checkpoint already holds in full (not sampled again). */
  finished: ReadonlySet<number>;
  /** Receives the sampled batches, for the run to use instead of encoding them again. */
  ready: Map<number, RunBatch>;
  encode(ks: readonly number[]): AsyncGenerator<RunBatch>;
  onProgress?(done: number, total: number, phase: PredictPhase): void;
}

/** The modality gap from the bank's text centre and the CLIP centre of `images`. */
function gapFrom(engine: PredictEngine, images: UnitMean): SavedGap {
  const textCentre = engine.textCentre();
  if (images.count === 0) return { vector: null, images: 0, texts: textCentre.count };
  const gap = estimateModalityGap(images, textCentre, engine.clip.dim);
  return { vector: gap.vector, images: gap.images, texts: gap.texts };
}

/**
 * The run's gap (null when no sampled image could be read: the map member is then absent) and the
 * open gap-sample store of a checkpointed run, which the caller closes when the run ends.
 */
export async function sampleModalityGap(s: GapSampling): Promise<{ gap: Float32Array | null; store: GapSampleStore | undefined }> {
  const { engine, cp, ready } = s;
  // Batches [0, sampleBatches) give the image centre of the modality gap (see gap-sample-store.ts).
  const sampleBatches = Math.ceil(Math.min(s.total, s.gapImages) / s.batchSize);
  let store: GapSampleStore | undefined;
  try {
    if (cp) {
      store = await GapSampleStore.open(sampleStoreFor(cp.file), s.run, { resume: !cp.startedFresh, clipDim: engine.clip.dim, onNotice: engine.notice });
      for (let k = 0; k < sampleBatches; k++) {
        const stored = s.finished.has(k) ? undefined : await store.batch(s.batchIds(k));
        if (!stored) continue;
        ready.set(k, { k, ...stored });
        engine.counts.embeddingsReused += loadedCount(stored);
      }
    }
    const saved = cp && s.resume ? await readGapFile(gapFileFor(cp.file), cp.fingerprint, engine.clip.dim) : undefined;
    if (saved) return { gap: saved.vector, store };
    if (cp && cp.size > 0) {
      throw new Img2PromptError(cp.file, `the modality gap of this run (${gapFileFor(cp.file)}) is missing; rerun with --restart to start over`);
    }
    const sampled = Math.min(s.total, sampleBatches * s.batchSize);
    let encoded = 0;
    for (const b of ready.values()) encoded += b.rows.length;
    const before = encoded > 0 ? ` (${encoded} of them encoded before this run, read back from ${store!.file})` : '';
    engine.notice(`estimating the CLIP modality gap from the first ${sampled} images${before}`);
    s.onProgress?.(encoded, sampled, 'encoding images');
    const missing = [...Array(sampleBatches).keys()].filter((k) => !ready.has(k));
    const sampler = s.encode(missing);
    try {
      for (;;) {
        const t0 = performance.now();
        const next = await sampler.next();
        engine.addTime('waiting for CLIP batches', t0);
        if (next.done) break;
        const b = next.value;
        ready.set(b.k, b);
        if (store) {
          const t1 = performance.now();
          await store.add(s.batchIds(b.k), b);
          engine.addTime('checkpoint writes', t1);
        }
        encoded += b.rows.length;
        s.onProgress?.(encoded, sampled, 'encoding images');
      }
    } finally {
      await sampler.return(undefined);
    }
    // In batch order, whichever run encoded them: the sum, and so the gap, has the same bits.
    const centre = new UnitMean(engine.clip.dim);
    for (let k = 0; k < sampleBatches; k++) {
      const b = ready.get(k)!;
      if (b.embeds.length > 0) centre.add(b.embeds);
    }
    const estimated = gapFrom(engine, centre);
    if (estimated.vector === null) engine.notice('warning: no sampled image could be read, so the map member has no modality gap and is left out');
    if (cp) await writeGapFile(gapFileFor(cp.file), cp.fingerprint, estimated);
    return { gap: estimated.vector, store };
  } catch (err) {
    await store?.close();
    throw err;
  }
}

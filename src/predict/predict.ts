import path from 'node:path';
import { Img2PromptError } from '../util/errors.js';
import { sha256Bytes } from '../models/sha256.js';
import { ClipModel, DEFAULT_CLIP_MODEL } from '../clip/model.js';
import { loadBatches, type ImageFailure } from '../image/batch-loader.js';
import { imageIdOf, uniqueImageIds } from '../image/image-id.js';
import { EXIF_MODES, type ExifMode } from '../image/decode.js';
import type { ClipImageProcessor } from '../image/image-processor.js';
import { EMBEDDING_DIM } from '../submission/submission-csv.js';
import { Interrogator } from '../interrogate/interrogator.js';
import { labelsHash } from '../interrogate/label-banks.js';
import { DEFAULT_BANK_DTYPE, type BankDtype, type InterrogateMode } from '../interrogate/types.js';
import { openBankRanker } from '../rank/bank-ranker.js';
import { MiniLMTextSide } from './minilm-text-side.js';
import { loadPromptBank } from './prompt-bank-cache.js';
import { DEFAULT_BANK_K, DEFAULT_BANK_TEMPERATURE, type PromptBank } from './prompt-bank.js';
import type { LinearMap } from './linear-map.js';
import { defaultMapPath, obtainMap } from './map-store.js';
import { estimateModalityGap, UnitMean } from './modality-gap.js';
import { combineMembers, equalWeights, loadEnsembleWeights, type EnsembleWeights, type ModelIds } from './ensemble.js';
import { PredictCheckpoint, type CheckpointRecord, type RunDescription } from './checkpoint.js';
import { fingerprintInputs } from './input-fingerprint.js';
import { gapFileFor, readGapFile, writeGapFile, type SavedGap } from './gap-file.js';
import { GapSampleStore, sampleStoreFor } from './gap-sample-store.js';
import { settleEarlierRun } from './resume-files.js';
import {
  DEFAULT_MEMBERS,
  UNAVAILABLE_MEMBERS,
  interrogatorMember,
  knnMember,
  mapMember,
  type Member,
  type MemberName,
  type MemberOutput,
} from './members.js';

/**
 * The main job end to end: image files → one MiniLM vector per image (the submission row) and a
 * readable prompt. Images are decoded, preprocessed and CLIP-encoded in fixed batches (batch k is
 * always files[k·B, (k+1)·B), so a resumed run sees exactly the batches an uninterrupted one would
 * and computes the same bits); every member runs on each batch; the members' vectors per image go to
 * the checkpoint before the image is handed out, combined with the ensemble weights.
 */

export const DEFAULT_BATCH_SIZE = 16;
/** Images whose CLIP centre, against the bank's text centre, gives the modality gap for the map member. */
export const DEFAULT_GAP_IMAGES = 512;
export { DEFAULT_CLIP_MODEL };

export interface PredictEngineOptions {
  /** CLIP model name in the cache, or a model folder; default clip-vit-b-32. */
  model?: string;
  /** Members to compute; default: those the weights name, else knn, map and interrogator. */
  members?: readonly MemberName[];
  /** Ensemble weights (a file or the object); default equal weights over the members. */
  weights?: string | EnsembleWeights;
  /** Accept weights fitted for other models (with a notice instead of an error). */
  allowModelMismatch?: boolean;
  /** Prompt corpus files for the bank; default the shipped corpus (defaultPromptCorpus). */
  promptsBank?: readonly string[];
  /** Storage of CLIP-side banks (prompt bank and label banks); default DEFAULT_BANK_DTYPE (fp32). */
  dtype?: BankDtype;
  /** Interrogator label lists (see LabelBankOptions). */
  labelsDir?: string;
  labels?: readonly string[];
  /** Linear-map file; default `<home>/maps/<clip model>/<bank>.json`, fitted and saved when missing. */
  map?: string;
  /** Ridge strength for a map fitted on the fly (default: selected on held-out prompts). */
  lambda?: number;
  /** Interrogator mode; default fast. */
  mode?: InterrogateMode;
  /** Image preprocessing pipeline; default the one the CLIP checkpoint's layout implies (see ClipOpenOptions). */
  imageProcessor?: ClipImageProcessor;
  /** kNN neighbours and softmax temperature (PromptBank defaults). */
  k?: number;
  temperature?: number;
  /** Warnings and one-line status messages (bank builds, map fits, random weights). */
  onNotice?(message: string): void;
  /** Told as a prompt or label bank is built, with the rows embedded so far (to draw progress from). */
  onBankProgress?(bank: string, rowsDone: number, count: number): void;
}

/**
 * What a run is doing when it reports progress: 'encoding images' while it encodes the sample the
 * modality gap is estimated from (only with the map member; nothing is handed out yet), then 'members'
 * while images are finished and handed out.
 */
export type PredictPhase = 'encoding images' | 'members';

export interface PredictRunOptions {
  /** Images per CLIP batch (and per checkpoint append); default 16. */
  batchSize?: number;
  /** Checkpoint file; none by default (the CLI uses `<output>.ckpt`). */
  checkpoint?: string;
  /** Continue from the checkpoint instead of starting over. */
  resume?: boolean;
  /**
   * Discard the resume files of an earlier run and start over. Without `resume` or `restart`, a run
   * whose checkpoint (or gap files) exists is refused rather than destroying the saved work.
   */
  restart?: boolean;
  /** Images sampled (from the start of the list) for the modality gap; default 512. */
  gapImages?: number;
  /** Also decode SVG files (see image/image-formats.ts); default false: raster images only. */
  allowSvg?: boolean;
  /** EXIF orientation: 'apply' (default) or 'ignore', as the Python pipelines do (see decodeImage). */
  exif?: ExifMode;
  /**
   * Phase 'members': called after each image is handed out (total: all images). Phase 'encoding images':
   * called before and after each batch of the modality-gap sample (total: the sampled images).
   */
  onProgress?(done: number, total: number, phase: PredictPhase): void;
}

export interface PredictedImage {
  /** Position in the input list. */
  index: number;
  id: string;
  file: string;
  /** [384] unit vector: the ensemble of the members, or the fallback vector. */
  vector: Float32Array;
  /** Interrogator prompt when that member is on, else the nearest bank prompt; null for a failed image. */
  prompt: string | null;
  /** The bank prompt nearest to the image in CLIP space and its cosine similarity, whatever the members; null for a failed image. */
  nearestPrompt: { text: string; similarity: number } | null;
  /** Each member's vector for this image (members that had nothing for it are left out). */
  members: Record<string, Float32Array>;
  /** Why the image could not be read (it then has the fallback vector). */
  failure?: string;
  /** True when `vector` is the fallback vector. */
  fallback: boolean;
  /** True when the image came from the checkpoint, not computed in this run. */
  resumed: boolean;
}

/** One CLIP batch: the files of batch k, the ones that loaded with their embeddings, and the failures. */
interface EncodedBatch {
  k: number;
  files: string[];
  loaded: string[];
  failures: ImageFailure[];
  /** [loaded.length, clipDim] unit rows. */
  embeds: Float32Array;
}

function checkPositiveInt(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new Img2PromptError(undefined, `${name} must be a positive integer, got ${value}`);
  return value;
}

function hasDirection(data: Float32Array, r: number, dim: number): boolean {
  for (let i = r * dim; i < (r + 1) * dim; i++) if (data[i] !== 0) return true;
  return false;
}

/** The opened models, banks, map and weights of a predict run; reusable for several runs (fit-weights). */
export class PredictEngine {
  private textCentre: UnitMean | undefined;

  private constructor(
    readonly clip: ClipModel,
    readonly minilm: MiniLMTextSide,
    readonly bank: PromptBank,
    readonly bankName: string,
    /** Members computed, in order. */
    readonly members: readonly MemberName[],
    readonly weights: EnsembleWeights,
    readonly map: LinearMap | undefined,
    readonly interrogator: Interrogator | undefined,
    private readonly settings: { k: number; temperature: number; mode: InterrogateMode; dtype: BankDtype },
    private readonly notice: (message: string) => void,
  ) {}

  /**
   * Opens the CLIP model and MiniLM, the prompt bank, the map and the label banks once (building or
   * fitting what is not cached yet, which takes minutes on a first run), for any number of runs.
   *
   * @example
   * ```ts
   * import { PredictEngine, predict } from 'img2prompt';
   *
   * const engine = await PredictEngine.open({ model: 'clip-vit-b-32', members: ['knn', 'map'] });
   * try {
   *   for await (const r of engine.run(['a.png'])) console.log(r.id, r.nearestPrompt?.text);
   *   for await (const r of predict(['b.png'], { engine })) console.log(r.id, r.prompt);
   * } finally {
   *   engine.close();
   * }
   * ```
   * @throws {Img2PromptError} naming the file and the fix when a model is not installed (`img2prompt
   *   models pull …`) or a weights, map or prompt-bank file is unreadable or made for other models.
   */
  static async open(options: PredictEngineOptions = {}): Promise<PredictEngine> {
    const notice = options.onNotice ?? (() => {});
    const dtype = options.dtype ?? DEFAULT_BANK_DTYPE;
    const k = options.k ?? DEFAULT_BANK_K;
    const temperature = options.temperature ?? DEFAULT_BANK_TEMPERATURE;
    const mode = options.mode ?? 'fast';
    checkPositiveInt('k', k);
    if (!(Number.isFinite(temperature) && temperature >= 0)) throw new Img2PromptError(undefined, `temperature must be a finite number >= 0, got ${temperature}`);

    const clip = await ClipModel.open(options.model ?? DEFAULT_CLIP_MODEL, { imageProcessor: options.imageProcessor });
    let minilm: MiniLMTextSide | undefined;
    try {
      if (clip.random) notice(`warning: CLIP model ${clip.name} has RANDOM weights: its predictions mean nothing (for tests and benchmarks only)`);
      minilm = await MiniLMTextSide.open();
      const ids: ModelIds = { clipModel: clip.modelId, minilmModel: minilm.identity };

      let weights: EnsembleWeights | undefined;
      let weightsName = 'the weights';
      if (typeof options.weights === 'string') {
        const loaded = await loadEnsembleWeights(options.weights, { expect: ids, allowModelMismatch: options.allowModelMismatch });
        loaded.warnings.forEach((w) => notice(`warning: ${w}`));
        weights = loaded.weights;
        weightsName = options.weights;
      } else if (options.weights) {
        weights = options.weights;
      }
      const members = chooseMembers(options.members, weights, weightsName, notice);
      weights ??= equalWeights(members);

      const { bank, def } = await loadPromptBank(clip, minilm, {
        files: options.promptsBank,
        clipDtype: dtype,
        onProgress: options.onBankProgress,
        onBank: (b, side) => notice(`prompt bank ${b.name} (${side}): ${b.labels.length} prompts, ${b.built ? `built (${b.reason ?? 'new'})` : 'cached'}`),
      });

      // On CUDA the bank's CLIP rows go to the GPU once; on a CPU the native kernel keeps them.
      if (clip.provider === 'cuda') bank.useRanker(await openBankRanker(bank.clipMatrix(), ['cuda', 'cpu']));

      let map: LinearMap | undefined;
      if (members.includes('map')) {
        ({ map } = await obtainMap(bank, ids, {
          file: options.map,
          defaultFile: defaultMapPath(clip.modelId, def.name),
          lambda: options.lambda,
          onNotice: notice,
        }));
      }
      let interrogator: Interrogator | undefined;
      if (members.includes('interrogator')) {
        interrogator = await Interrogator.open(clip, {
          labelsDir: options.labelsDir,
          extraLabels: options.labels,
          dtype,
          rankProviders: [clip.provider],
          onProgress: options.onBankProgress,
          onBank: (b) => {
            if (b.built) notice(`label bank ${b.name}: ${b.labels.length} labels, built (${b.reason ?? 'new'})`);
          },
        });
      }
      return new PredictEngine(clip, minilm, bank, def.name, members, weights, map, interrogator, { k, temperature, mode, dtype }, notice);
    } catch (err) {
      clip.close();
      minilm?.close();
      throw err;
    }
  }

  get modelIds(): ModelIds {
    return { clipModel: this.clip.modelId, minilmModel: this.minilm.identity };
  }

  /** Everything that changes the members' vectors, for the checkpoint fingerprint. */
  private fingerprintOptions(batchSize: number, gapImages: number, exif: ExifMode): Record<string, unknown> {
    const options: Record<string, unknown> = {
      members: [...this.members],
      batchSize,
      imageProcessor: this.clip.imageProcessor,
      exif,
      bank: this.bankName,
      dtype: this.settings.dtype,
      k: this.settings.k,
      temperature: this.settings.temperature,
    };
    if (this.map) {
      options.gapImages = gapImages;
      const w = this.map.weights;
      options.map = { dataHash: this.map.info.dataHash, lambda: this.map.info.lambda, weights: sha256Bytes(new Uint8Array(w.buffer, w.byteOffset, w.byteLength)) };
    }
    if (this.interrogator) {
      const all = this.interrogator.bankList();
      options.mode = this.settings.mode;
      options.labels = sha256Bytes(JSON.stringify(all.map((x) => [x.name, labelsHash(x.labels)])));
    }
    return options;
  }

  /** The member functions for a run with modality gap `gap` (null: the map member has no gap, so it is absent). */
  private memberFunctions(gap: Float32Array | null): Partial<Record<MemberName, Member>> {
    const out: Partial<Record<MemberName, Member>> = {};
    for (const name of this.members) {
      if (name === 'knn') out.knn = knnMember(this.bank, { k: this.settings.k, temperature: this.settings.temperature });
      else if (name === 'map' && this.map && gap) out.map = mapMember(this.map, gap);
      else if (name === 'interrogator' && this.interrogator) {
        out.interrogator = interrogatorMember(this.interrogator, this.minilm.embedder, { mode: this.settings.mode });
      }
    }
    return out;
  }

  /**
   * Seconds spent per stage of the runs so far. 'waiting for CLIP batches' includes the vision tower
   * time (listed apart); the rest of it is decoding and preprocessing the pipeline could not hide.
   */
  readonly stageSeconds: Record<string, number> = {};

  /**
   * Images of the runs so far that went through the vision tower, and sampled images whose embeddings
   * were read back from a resumed run's gap sample instead (images finished in a checkpoint are neither).
   */
  readonly counts = { imagesEncoded: 0, embeddingsReused: 0 };

  private addTime(stage: string, since: number): void {
    this.stageSeconds[stage] = (this.stageSeconds[stage] ?? 0) + (performance.now() - since) / 1000;
  }

  /** Decodes, preprocesses and CLIP-encodes batches `ks`, decoding the next batch while the caller works on this one. */
  private async *encodeBatches(
    ks: readonly number[], batchFiles: (k: number) => string[], batchSize: number, image: { exif: ExifMode; allowSvg: boolean },
  ): AsyncGenerator<EncodedBatch> {
    // Only the very last batch of the list can be short, and it comes last here too, so chunking
    // the concatenation by batchSize gives back exactly batches ks.
    const files = ks.flatMap(batchFiles);
    let j = 0;
    for await (const batch of loadBatches(files, { ...this.clip.imageTransform, batchSize, ...image })) {
      const k = ks[j++]!;
      const rows = batch.ids.length;
      const t0 = performance.now();
      const embeds = rows > 0 ? await this.clip.encodePixels(batch.pixels, rows) : new Float32Array(0);
      this.addTime('clip vision tower', t0);
      this.counts.imagesEncoded += rows;
      yield { k, files: batchFiles(k), loaded: batch.files, failures: batch.failures, embeds };
    }
  }

  /** The modality gap from the bank's text centre and the CLIP centre of `images`. */
  private gapFrom(images: UnitMean): SavedGap {
    if (!this.textCentre) {
      this.textCentre = new UnitMean(this.clip.dim);
      this.textCentre.add(this.bank.clip, this.bank.label);
    }
    if (images.count === 0) return { vector: null, images: 0, texts: this.textCentre.count };
    const gap = estimateModalityGap(images, this.textCentre, this.clip.dim);
    return { vector: gap.vector, images: gap.images, texts: gap.texts };
  }

  /** Every member on one batch → one checkpoint record per file of the batch, in input order. */
  private async predictBatch(batch: EncodedBatch, members: Partial<Record<MemberName, Member>>): Promise<CheckpointRecord[]> {
    const rows = batch.loaded.length;
    const outputs: Partial<Record<MemberName, MemberOutput>> = {};
    if (rows > 0) {
      for (const name of this.members) {
        const member = members[name];
        const t0 = performance.now();
        if (member) outputs[name] = await member(batch.embeds, rows);
        this.addTime(`member ${name}`, t0);
      }
    }
    // The nearest bank prompt is kNN's top neighbour, searched here when kNN is off; the readable prompt
    // is the interrogator's, else that nearest prompt.
    let nearest = outputs.knn?.nearest;
    if (!nearest && rows > 0) {
      const t0 = performance.now();
      nearest = (await this.bank.predict(batch.embeds, { k: 1 })).nearest;
      this.addTime('nearest bank prompt', t0);
    }
    const prompts = outputs.interrogator?.prompts ?? nearest?.map((n) => n?.text ?? null);

    const rowOf = new Map(batch.loaded.map((f, i) => [f, i]));
    const failureOf = new Map(batch.failures.map((f) => [f.file, f.reason]));
    return batch.files.map((file) => {
      const id = imageIdOf(file);
      const r = rowOf.get(file);
      if (r === undefined) return { id, members: {}, meta: { failure: failureOf.get(file) ?? 'could not be read' } };
      const vectors: Record<string, Float32Array> = {};
      for (const [name, out] of Object.entries(outputs)) {
        if (hasDirection(out.vectors, r, EMBEDDING_DIM)) vectors[name] = out.vectors.slice(r * EMBEDDING_DIM, (r + 1) * EMBEDDING_DIM);
      }
      const meta: Record<string, unknown> = {};
      const prompt = prompts?.[r];
      if (prompt) meta.prompt = prompt;
      const n = nearest?.[r];
      if (n) {
        meta.nearest = n.text;
        meta.nearestSimilarity = n.score;
      }
      return { id, members: vectors, meta };
    });
  }

  /** A record (fresh or from the checkpoint: the same code path, so both give the same bits) → the image's result. */
  private finish(record: CheckpointRecord, file: string, index: number, resumed: boolean): PredictedImage {
    const failure = typeof record.meta?.failure === 'string' ? record.meta.failure : undefined;
    const fallback = this.bank.meanTextVector();
    const prompt = typeof record.meta?.prompt === 'string' ? record.meta.prompt : null;
    const near = record.meta?.nearest;
    const similarity = record.meta?.nearestSimilarity;
    const nearestPrompt = !failure && typeof near === 'string' && typeof similarity === 'number' ? { text: near, similarity } : null;
    const base = { index, id: record.id, file, prompt: failure ? null : prompt, nearestPrompt, members: record.members, resumed };
    if (failure !== undefined) return { ...base, vector: Float32Array.from(fallback), failure, fallback: true };
    const predictions: Record<string, Float32Array> = {};
    for (const name of this.members) predictions[name] = record.members[name] ?? new Float32Array(EMBEDDING_DIM);
    const combined = combineMembers(predictions, this.weights, { rows: 1, dim: EMBEDDING_DIM, fallback, label: file });
    return { ...base, vector: combined.vectors, fallback: combined.fallbackRows.length > 0 };
  }

  /** Predicts `images` in input order, one result per image (see `predict`). */
  async *run(images: readonly string[], options: PredictRunOptions = {}): AsyncGenerator<PredictedImage, void, undefined> {
    const batchSize = checkPositiveInt('batch size', options.batchSize ?? DEFAULT_BATCH_SIZE);
    const gapImages = checkPositiveInt('gap images', options.gapImages ?? DEFAULT_GAP_IMAGES);
    const allowSvg = options.allowSvg ?? false;
    const exif = options.exif ?? 'apply';
    if (!EXIF_MODES.includes(exif)) throw new Img2PromptError(undefined, `exif must be "apply" or "ignore", got ${JSON.stringify(exif)}`);
    const files = [...images];
    // The checkpoint keys images by id, so ids must be unique; the characters they may hold are the
    // submission writer's business, not the engine's.
    const ids = uniqueImageIds(files);
    const total = files.length;
    if (total === 0) return;
    const batches = Math.ceil(total / batchSize);
    const batchFiles = (k: number) => files.slice(k * batchSize, (k + 1) * batchSize);

    const run: RunDescription = {
      inputs: files.map((f) => path.resolve(f)),
      // Only a checkpointed run needs them: they let a resume refuse images changed in the meantime.
      contents: options.checkpoint ? await fingerprintInputs(files) : undefined,
      // allowSvg decides whether an SVG input is an image or a failure, so it changes the results.
      options: { ...this.fingerprintOptions(batchSize, gapImages, exif), ...(allowSvg ? { allowSvg } : {}) },
      models: { clip: this.clip.modelId, minilm: this.minilm.identity },
    };
    if (options.checkpoint) await settleEarlierRun(options.checkpoint, options);
    const cp = options.checkpoint
      ? await PredictCheckpoint.open(options.checkpoint, run, { resume: options.resume ?? false, dim: EMBEDDING_DIM, chunkSize: batchSize })
      : undefined;
    if (cp && options.resume) {
      if (cp.startedFresh) this.notice(`no checkpoint to resume at ${cp.file}; starting from the beginning`);
      else this.notice(`resuming from ${cp.file}: ${cp.done.size} of ${total} images already done`);
    }
    const finished = new Set<number>();
    for (let k = 0; k < batches; k++) if (cp && ids.slice(k * batchSize, (k + 1) * batchSize).every((id) => cp.has(id))) finished.add(k);

    const ready = new Map<number, EncodedBatch>();
    let encoder: AsyncGenerator<EncodedBatch> | undefined;
    let store: GapSampleStore | undefined;
    try {
      let gap: Float32Array | null = null;
      if (this.map) {
        // Batches [0, sampleBatches) give the image centre of the modality gap (see gap-sample-store.ts).
        const sampleBatches = Math.ceil(Math.min(total, gapImages) / batchSize);
        if (cp) {
          store = await GapSampleStore.open(sampleStoreFor(cp.file), run, { resume: !cp.startedFresh, clipDim: this.clip.dim, onNotice: this.notice });
          for (let k = 0; k < sampleBatches; k++) {
            const stored = finished.has(k) ? undefined : store.batch(batchFiles(k));
            if (!stored) continue;
            ready.set(k, { k, files: batchFiles(k), ...stored });
            this.counts.embeddingsReused += stored.loaded.length;
          }
        }
        const saved = cp && options.resume ? await readGapFile(gapFileFor(cp.file), cp.fingerprint, this.clip.dim) : undefined;
        if (saved) {
          gap = saved.vector;
        } else {
          if (cp && cp.done.size > 0) {
            throw new Img2PromptError(cp.file, `the modality gap of this run (${gapFileFor(cp.file)}) is missing; rerun with --restart to start over`);
          }
          const sampled = Math.min(total, sampleBatches * batchSize);
          let encoded = 0;
          for (const b of ready.values()) encoded += b.files.length;
          const before = encoded > 0 ? ` (${encoded} of them encoded before this run, read back from ${store!.file})` : '';
          this.notice(`estimating the CLIP modality gap from the first ${sampled} images${before}`);
          options.onProgress?.(encoded, sampled, 'encoding images');
          // The sampled batches are kept, so their images are not encoded twice.
          const missing = [...Array(sampleBatches).keys()].filter((k) => !ready.has(k));
          const sampler = this.encodeBatches(missing, batchFiles, batchSize, { exif, allowSvg });
          try {
            for (;;) {
              const t0 = performance.now();
              const next = await sampler.next();
              this.addTime('waiting for CLIP batches', t0);
              if (next.done) break;
              const b = next.value;
              ready.set(b.k, b);
              if (store) {
                const t1 = performance.now();
                await store.add(b.files, b);
                this.addTime('checkpoint writes', t1);
              }
              encoded += b.files.length;
              options.onProgress?.(encoded, sampled, 'encoding images');
            }
          } finally {
            await sampler.return(undefined);
          }
          // In batch order, whichever run encoded them: the sum, and so the gap, has the same bits.
          const centre = new UnitMean(this.clip.dim);
          for (let k = 0; k < sampleBatches; k++) {
            const b = ready.get(k)!;
            if (b.loaded.length > 0) centre.add(b.embeds);
          }
          const estimated = this.gapFrom(centre);
          if (estimated.vector === null) this.notice('warning: no sampled image could be read, so the map member has no modality gap and is left out');
          if (cp) await writeGapFile(gapFileFor(cp.file), cp.fingerprint, estimated);
          gap = estimated.vector;
        }
      }
      const members = this.memberFunctions(gap);

      const todo = [...Array(batches).keys()].filter((k) => !finished.has(k) && !ready.has(k));
      encoder = this.encodeBatches(todo, batchFiles, batchSize, { exif, allowSvg });
      let done = 0;
      for (let k = 0; k < batches; k++) {
        const start = k * batchSize;
        let records: CheckpointRecord[];
        const resumed = finished.has(k);
        if (resumed) {
          records = ids.slice(start, start + batchSize).map((id) => cp!.done.get(id)!);
        } else {
          let batch = ready.get(k);
          ready.delete(k);
          if (!batch) {
            const t0 = performance.now();
            const next = await encoder.next();
            this.addTime('waiting for CLIP batches', t0);
            if (next.done || next.value.k !== k) throw new Error(`internal: CLIP batches out of step at batch ${k}`);
            batch = next.value;
          }
          records = await this.predictBatch(batch, members);
          if (cp) {
            const t0 = performance.now();
            for (const r of records) await cp.add(r);
            await cp.flush();
            this.addTime('checkpoint writes', t0);
          }
        }
        for (let i = 0; i < records.length; i++) {
          yield this.finish(records[i]!, files[start + i]!, start + i, resumed);
          options.onProgress?.(++done, total, 'members');
        }
      }
    } finally {
      await encoder?.return(undefined);
      await store?.close();
      await cp?.close();
    }
  }

  close(): void {
    this.interrogator?.close();
    this.bank.close();
    this.clip.close();
    this.minilm.close();
  }
}

/** Members to compute: the asked-for ones (default: the weighted ones, else the defaults) that exist and carry weight. */
function chooseMembers(
  asked: readonly MemberName[] | undefined,
  weights: EnsembleWeights | undefined,
  weightsName: string,
  notice: (message: string) => void,
): MemberName[] {
  const weighted = weights ? Object.keys(weights.members).filter((n) => weights.members[n]! > 0) : undefined;
  const wanted = asked ?? (weighted as MemberName[] | undefined) ?? [...DEFAULT_MEMBERS];
  const out: MemberName[] = [];
  for (const name of wanted) {
    if (UNAVAILABLE_MEMBERS.has(name)) {
      notice(`member ${name} is not available in this build; it is absent from the ensemble`);
    } else if (!(DEFAULT_MEMBERS as readonly string[]).includes(name)) {
      notice(`warning: ${weightsName} names member "${name}", which this version does not know; it is absent`);
    } else if (weighted && !weighted.includes(name)) {
      notice(`member ${name} has no weight in ${weightsName}; it is not computed`);
    } else {
      out.push(name);
    }
  }
  if (out.length === 0) {
    throw new Img2PromptError(weights ? weightsName : undefined, `none of the members ${wanted.join(', ')} can be computed (available: ${DEFAULT_MEMBERS.join(', ')})`);
  }
  return out;
}

export type PredictOptions = PredictRunOptions & PredictEngineOptions & { engine?: PredictEngine };

/**
 * Predicts the prompt vector of every image in `images` (file paths), streaming one result per image
 * in input order. Opens the models (or uses `options.engine`), the prompt bank and the label banks
 * (building their caches when needed), the map (fitting it when missing) and the weights. An image
 * that cannot be read comes out with its reason and the fallback vector; the run goes on.
 *
 * @example
 * ```ts
 * import { predict, writeSubmission, type PredictedImage } from 'img2prompt';
 *
 * const results: PredictedImage[] = [];
 * for await (const r of predict(['images/a.png', 'images/b.png'], { model: 'clip-vit-b-32' })) {
 *   console.log(r.id, r.prompt, r.failure ?? '');   // one result per image, in input order
 *   results.push(r);
 * }
 * const vectors = new Float32Array(results.length * 384); // each r.vector: [384] unit, MiniLM space
 * results.forEach((r, i) => vectors.set(r.vector, i * 384));
 * await writeSubmission('submission.csv', results.map((r) => r.id), vectors);
 * ```
 * @throws {Img2PromptError} before the first result, naming the file and the fix, when a model is not
 *   installed, a weights, map or prompt-bank file is unreadable, or two images share an id.
 */
export async function* predict(images: readonly string[], options: PredictOptions = {}): AsyncGenerator<PredictedImage, void, undefined> {
  const engine = options.engine ?? (await PredictEngine.open(options));
  try {
    yield* engine.run(images, options);
  } finally {
    if (!options.engine) engine.close();
  }
}

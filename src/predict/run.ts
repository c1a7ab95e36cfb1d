/**
 * One predict run over a list of images: the batch loop. Images are decoded, preprocessed and
 * CLIP-encoded in fixed batches (batch k is always inputs [k·B, (k+1)·B), so a resumed run sees exactly
 * the batches an uninterrupted one would and computes the same bits); every member runs on each batch;
 * the members' vectors per image go to the checkpoint before the image is handed out, combined with
 * the ensemble weights. Records fresh and resumed take the same path to a result (finish), so both
 * give the same bits.
 */
import path from 'node:path';
import { createHash } from 'node:crypto';
import type { ExifMode } from '../image/decode.js';
import type { ImageInput, ResolvedInput } from '../image/image-input.js';
import { IMAGE_LIST, listInputs, loaderInput, type ImageList } from '../image/image-list.js';
import { EMBEDDING_DIM } from '../submission/submission-csv.js';
import { Img2PromptError } from '../util/errors.js';
import { contentsFileFor, inputNamesOf, PredictCheckpoint, type CheckpointRecord, type RunDescription } from './checkpoint.js';
import { combineMembers } from './ensemble.js';
import type { PredictEngine } from './engine.js';
import { sampleModalityGap, type RunBatch } from './gap-sampling.js';
import { writeInputContents } from './input-fingerprint.js';
import { captionBatch } from '../caption/caption-batch.js';
import type { GapSampleStore } from './gap-sample-store.js';
import type { EnsembleMemberName, Member, MemberBatch, MemberOutput } from './members.js';
import { outcomeOf, type RecordMeta } from './records.js';
import { settleEarlierRun } from './resume-files.js';
import { DEFAULT_BATCH_SIZE, DEFAULT_GAP_IMAGES, type PredictRunOptions, type PredictedImage } from './types.js';

function hasDirection(data: Float32Array, r: number, dim: number): boolean {
  for (let i = r * dim; i < (r + 1) * dim; i++) if (data[i] !== 0) return true;
  return false;
}

/** What the checkpoint fingerprint names an input by: the absolute path, or `bytes:<id>`. */
function describedInput(input: ResolvedInput): string {
  if (input.file === undefined) return `bytes:${input.id}`;
  // An absolute path is its own name: the caller's string is kept rather than a copy per image.
  const resolved = path.resolve(input.file);
  return resolved === input.file ? input.file : resolved;
}

/** The ids of batches [0, count) of the run (the modality-gap sample's), read once. */
async function sampledBatchIds(count: number, batchIds: (k: number) => Promise<string[]>): Promise<string[][]> {
  const out: string[][] = [];
  for (let k = 0; k < count; k++) out.push(await batchIds(k));
  return out;
}

/** The names of the inputs of `list` (describedInput), in order. */
async function* inputNames(list: ImageList): AsyncGenerator<string, void, undefined> {
  for await (const input of listInputs(list)) yield describedInput(input);
}

/**
 * See PredictEngine.run: `inputs` with unique ids and `options` checked by the caller. The inputs are
 * read from the list a batch at a time (and in passes, for their names and fingerprints), so what the
 * run holds does not grow with their number but for a bit per batch.
 */
export async function* runPredict(
  engine: PredictEngine, inputs: ImageList, options: PredictRunOptions,
): AsyncGenerator<PredictedImage, void, undefined> {
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  const gapImages = options.gapImages ?? DEFAULT_GAP_IMAGES;
  const allowSvg = options.allowSvg ?? false;
  const exif: ExifMode = options.exif ?? 'apply';
  const total = inputs.length;
  if (total === 0) return;
  const batches = Math.ceil(total / batchSize);
  const batchInputs = (k: number) => inputs.slice(k * batchSize, (k + 1) * batchSize);
  const batchIds = async (k: number) => (await batchInputs(k)).map((x) => x.id);

  if (options.checkpoint) await settleEarlierRun(options.checkpoint, options);
  const run: RunDescription = {
    inputs: await inputNamesOf(inputNames(inputs)),
    // Only a checkpointed run needs them: they let a resume refuse images changed in the meantime.
    contents: options.checkpoint
      ? await writeInputContents(`${contentsFileFor(options.checkpoint)}.new`, total, (start, end) => inputs.slice(start, end), () => inputNames(inputs))
      : undefined,
    // allowSvg decides whether an SVG input is an image or a failure, so it changes the results.
    options: {
      ...engine.fingerprintOptions(batchSize, gapImages, exif),
      ...(allowSvg ? { allowSvg } : {}),
      ...(options.modalityGap ? { modalityGap: createHash('sha256').update(new Uint8Array(options.modalityGap.buffer, options.modalityGap.byteOffset, options.modalityGap.byteLength)).digest('hex') } : {}),
    },
    models: { clip: engine.clip.modelId, minilm: engine.minilm.identity },
  };
  const cp = options.checkpoint
    ? await PredictCheckpoint.open(options.checkpoint, run, { resume: options.resume ?? false, dim: EMBEDDING_DIM, chunkSize: batchSize, indexAdded: false })
    : undefined;
  if (cp && options.resume) {
    if (cp.startedFresh) engine.notice(`no checkpoint to resume at ${cp.file}; starting from the beginning`);
    else engine.notice(`resuming from ${cp.file}: ${cp.size} of ${total} images already done`);
  }
  const finished = new Set<number>();
  if (cp && cp.size > 0) for (let k = 0; k < batches; k++) if ((await batchIds(k)).every((id) => cp.has(id))) finished.add(k);

  /** Decodes, preprocesses and CLIP-encodes batches `ks`, decoding the next batch while the caller works on this one. */
  async function* encode(ks: readonly number[]): AsyncGenerator<RunBatch> {
    // Only the very last batch of the list can be short, and it comes last here too, so chunking
    // the concatenation by batchSize gives back exactly batches ks: a list of those batches, read
    // from the run's list as the loader asks for them.
    const chosen: ImageList = {
      [IMAGE_LIST]: true,
      length: ks.reduce((n, k) => n + Math.min(batchSize, total - k * batchSize), 0),
      slice: async (start, end) => {
        const out: ResolvedInput[] = [];
        for (let j = Math.floor(start / batchSize); j * batchSize < end && j < ks.length; j++) out.push(...(await batchInputs(ks[j]!)));
        const from = start - Math.floor(start / batchSize) * batchSize;
        return out.slice(from, from + end - start);
      },
    };
    let j = 0;
    for await (const batch of engine.clip.encodeBatches(chosen, { batchSize, exif, allowSvg })) {
      engine.ensureOpen();
      const k = ks[j++]!;
      engine.addSeconds('clip vision tower', batch.inferenceSeconds);
      engine.counts.imagesEncoded += batch.loaded.length;
      yield { k, ...outcomeOf(batch, batch.start, batch.count) };
    }
  }

  const ready = new Map<number, RunBatch>();
  let encoder: AsyncGenerator<RunBatch> | undefined;
  let store: GapSampleStore | undefined;
  try {
    let gap: Float32Array | null = null;
    if (engine.map && options.modalityGap) {
      if (!(options.modalityGap instanceof Float32Array)) throw new TypeError('predict run: option "modalityGap" must be a Float32Array');
      if (options.modalityGap.length !== engine.clip.dim) {
        throw new RangeError(`modalityGap has ${options.modalityGap.length} values; this CLIP model's gap has ${engine.clip.dim}`);
      }
      gap = options.modalityGap;
    } else if (engine.map) {
      const sampleIds = await sampledBatchIds(Math.ceil(Math.min(total, gapImages) / batchSize), batchIds);
      ({ gap, store } = await sampleModalityGap({
        engine, cp, run, total, batchSize, gapImages, batchIds: (k) => sampleIds[k]!, finished, ready, encode,
        resume: options.resume ?? false,
        onProgress: options.onProgress,
      }));
    }
    if (engine.map) options.onModalityGap?.(gap);
    const members = engine.memberFunctions(gap);

    // Batch numbers (8 bytes a batch of images) rather than the batches.
    const todo = [...Array(batches).keys()].filter((k) => !finished.has(k) && !ready.has(k));
    encoder = encode(todo);
    let done = 0;
    for (let k = 0; k < batches; k++) {
      const start = k * batchSize;
      let records: CheckpointRecord[];
      const resumed = finished.has(k);
      // Read once from the list: the batch's ids, what the members need and the labels of the results.
      const inputsOfBatch = await batchInputs(k);
      if (resumed) {
        // Read back from the file: the checkpoint keeps where records are, not what they hold.
        records = (await cp!.readMany(inputsOfBatch.map((x) => x.id))).map((r) => r!);
      } else {
        let batch = ready.get(k);
        ready.delete(k);
        if (!batch) {
          const t0 = performance.now();
          const next = await encoder.next();
          engine.addTime('waiting for CLIP batches', t0);
          if (next.done || next.value.k !== k) throw new Error(`internal: CLIP batches out of step at batch ${k}`);
          batch = next.value;
        }
        engine.ensureOpen();
        records = await predictBatch(engine, batch, inputsOfBatch, members, { allowSvg, exif });
        if (cp) {
          const t0 = performance.now();
          for (const r of records) await cp.add(r);
          await cp.flush();
          engine.addTime('checkpoint writes', t0);
        }
      }
      for (let i = 0; i < records.length; i++) {
        yield finish(engine, records[i]!, inputsOfBatch[i]!.label, start + i, resumed);
        options.onProgress?.(++done, total, 'members');
      }
    }
  } catch (err) {
    // Closed during the run: say so, rather than what a closed session said.
    if (engine.closed) engine.ensureOpen();
    throw err;
  } finally {
    await encoder?.return(undefined);
    await store?.close();
    await cp?.close();
  }
}

/** Every member on one batch → one checkpoint record per input of the batch, in input order. */
async function predictBatch(
  engine: PredictEngine, batch: RunBatch, inputs: readonly ResolvedInput[], members: Partial<Record<EnsembleMemberName, Member>>,
  image: { allowSvg: boolean; exif: ExifMode },
): Promise<CheckpointRecord[]> {
  const rows = batch.embeds.length / engine.clip.dim;
  const outputs: Partial<Record<EnsembleMemberName, MemberOutput>> = {};
  let captions: (string | undefined)[] | undefined;
  // The loaded inputs in row order (batch.rows maps each input to its row), for the captioner and the ONNX members.
  const loaded: ImageInput[] = new Array(rows);
  inputs.forEach((x, i) => {
    const r = batch.rows[i]!;
    if (r >= 0) loaded[r] = loaderInput(x);
  });
  if (rows > 0 && engine.captioner) {
    const t0 = performance.now();
    captions = await captionBatch(engine.captioner, loaded, { caption: engine.settings.caption, ...image });
    engine.addTime('captioner', t0);
  }
  if (rows > 0) {
    const memberBatch: MemberBatch = { ...(captions ? { captions } : {}), inputs: loaded, decode: image };
    for (const name of engine.members) {
      const member = members[name];
      const t0 = performance.now();
      if (member) outputs[name] = await member(batch.embeds, rows, memberBatch);
      engine.addTime(`member ${name}`, t0);
    }
  }
  // The nearest bank prompt is kNN's top neighbour, searched here when kNN is off; the readable prompt
  // is the interrogator's, else that nearest prompt.
  let nearest = outputs.knn?.nearest;
  if (!nearest && rows > 0) {
    const t0 = performance.now();
    nearest = (await engine.bank.predict(batch.embeds, { k: 1 })).nearest;
    engine.addTime('nearest bank prompt', t0);
  }
  const prompts = outputs.interrogator?.prompts ?? captions?.map((c) => c ?? null) ?? nearest?.map((n) => n?.text ?? null);

  return inputs.map(({ id }, i) => {
    const r = batch.rows[i]!;
    if (r < 0) return { id, members: {}, meta: { failure: batch.reasons[i] ?? 'could not be read' } };
    const vectors: Record<string, Float32Array> = {};
    for (const [name, out] of Object.entries(outputs)) {
      if (out && hasDirection(out.vectors, r, EMBEDDING_DIM)) vectors[name] = out.vectors.slice(r * EMBEDDING_DIM, (r + 1) * EMBEDDING_DIM);
    }
    const meta: RecordMeta = {};
    const prompt = prompts?.[r];
    if (prompt) meta.prompt = prompt;
    const caption = captions?.[r];
    if (caption !== undefined) meta.caption = caption;
    const n = nearest?.[r];
    if (n) {
      meta.nearest = n.text;
      meta.nearestSimilarity = n.score;
    }
    return { id, members: vectors, meta };
  });
}

/** A record (fresh or from the checkpoint: the same code path, so both give the same bits) → the image's result. */
function finish(engine: PredictEngine, record: CheckpointRecord, file: string, index: number, resumed: boolean): PredictedImage {
  const { failure, prompt, caption, nearest, nearestSimilarity } = record.meta ?? {};
  const fallback = engine.bank.meanTextVector();
  const nearestPrompt = !failure && nearest !== undefined && nearestSimilarity !== undefined ? { text: nearest, similarity: nearestSimilarity } : null;
  const base = {
    index, id: record.id, file, prompt: failure ? null : (prompt ?? null), caption: failure ? null : (caption ?? null), nearestPrompt, members: record.members, resumed,
  };
  if (failure !== undefined) return { ...base, vector: Float32Array.from(fallback), failure, fallback: true };
  const predictions: Record<string, Float32Array> = {};
  for (const name of engine.members) predictions[name] = record.members[name] ?? new Float32Array(EMBEDDING_DIM);
  const combined = combineMembers(predictions, engine.weights, { rows: 1, dim: EMBEDDING_DIM, fallback, label: file });
  return { ...base, vector: combined.vectors, fallback: combined.fallbackRows.length > 0 };
}

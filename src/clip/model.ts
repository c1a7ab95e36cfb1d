import { existsSync } from 'node:fs';
import path from 'node:path';
import { Session, defaultProviders, tensor, type ExecutionProvider, type SessionOptions } from '../runtime/session.js';
import { precisionFor, requestedPrecision, type Precision } from '../runtime/precision.js';
import { Img2PromptError } from '../util/errors.js';
import { normalizeRowsInPlace } from '../util/rows.js';
import { modelDir, readInstallRecord } from '../models/cache.js';
import { DEFAULT_IMAGE_BATCH, loadBatches, type BatchFailure, type ImageFailure } from '../image/batch-loader.js';
import type { ImageInput } from '../image/image-input.js';
import type { ImageList } from '../image/image-list.js';
import type { FormatOptions } from '../image/image-formats.js';
import { CLIP_IMAGE_PROCESSORS, type ClipImageProcessor } from '../image/image-processor.js';
import type { ClipTransformOptions } from '../image/clip-transform.js';
import { EXIF_MODES, type ExifMode } from '../image/decode.js';
import { PRECISIONS } from '../runtime/precision.js';
import { readOptions } from '../util/options.js';
import { ClipTokenizer, padClipBatch, padIdFor } from './tokenizer.js';
import type { ClipTokenizerKind } from './pre-tokenize.js';
import { ensureClipOnnx, ensureClipTextPrefixOnnx, type ClipOnnxFiles } from './onnx-cache.js';
import { ClipPrefixEncoder } from './prefix-encoder.js';
import { classifyTower, type TowerIo } from './tower-io.js';
import type { ClipConfig } from './config.js';
import type { ClipTextSide } from '../interrogate/types.js';

export interface ClipOpenOptions {
  sessionOptions?: SessionOptions;
  /** Towers to load (default both): an image-only job need not hold the text tower in memory. */
  towers?: ('vision' | 'text')[];
  /** Force QuickGELU (OpenAI-pretrained weights) when the checkpoint's config does not say. */
  quickGelu?: boolean;
  /**
   * Tokenize as open_clip ('open_clip') or transformers ('hf') does. Default: as the library whose
   * layout the checkpoint has, so the text tower sees the ids it was trained and evaluated with.
   */
  tokenizerKind?: ClipTokenizerKind;
  /**
   * Preprocess images as this pipeline does (see image/image-processor.ts). Default: the one the
   * checkpoint was published for, from its layout ('open_clip' for open_clip checkpoints, 'hf' for
   * transformers ones and exports that come with a transformers config).
   */
  imageProcessor?: ClipImageProcessor;
  /**
   * Precision of the towers built from a checkpoint (a ready export runs as exported). Default:
   * IMG2PROMPT_PRECISION, else fp16 when the sessions try CUDA first and fp32 on the CPU; an fp16
   * chosen that way falls back to fp32 when the session lands on the CPU after all.
   */
  precision?: Precision;
}

/** The CLIP model every command opens unless told otherwise (predict, fit-map, interrogate()). */
export const DEFAULT_CLIP_MODEL = 'clip-vit-b-32';


export interface EncodeBatchesOptions extends FormatOptions {
  /** Images per vision-tower call; default DEFAULT_IMAGE_BATCH. */
  batchSize?: number;
  concurrency?: number;
  /** Images with more pixels (width × height) than this fail without being decoded (default 100 MP, see decodeImage). */
  maxPixels?: number;
  /** EXIF orientation: 'apply' (default) or 'ignore', as the Python pipelines do (see decodeImage). */
  exif?: ExifMode;
}

/** One batch of encodeBatches: images [start, start + count) of the list. */
export interface EncodedBatch {
  start: number;
  count: number;
  /** Positions in the list of the images that loaded, ascending; embedding row i is image loaded[i]. */
  loaded: number[];
  /** Ids of the loaded images, row order. */
  ids: string[];
  /** Paths (`<id>` for bytes) of the loaded images, row order. */
  files: string[];
  /** [loaded.length, dim] unit rows (a fresh array the caller owns). */
  embeds: Float32Array;
  /** Images of the batch that could not be read (index: position in the list). */
  failures: BatchFailure[];
  /** Seconds this batch spent in the vision tower. */
  inferenceSeconds: number;
}

export interface EncodeImagesOptions extends EncodeBatchesOptions {
  onProgress?: (done: number, total: number) => void;
  /** Called for each image that cannot be read; the rest go on. */
  onFailure?: (failure: ImageFailure) => void;
}

export interface EncodedImages {
  ids: string[];
  files: string[];
  /** [ids.length, dim] unit rows (encodePixels' output). */
  embeds: Float32Array;
  failures: ImageFailure[];
  /** Seconds spent in the vision tower (the rest of the wall time is decode + preprocess not hidden by it). */
  inferenceSeconds: number;
}

export interface EncodeTextsOptions {
  batchSize?: number;
  /** 'dynamic' (default): each batch padded to its longest text, texts grouped by length; 'fixed': pad to 77. */
  padding?: 'dynamic' | 'fixed';
  onProgress?: (done: number, total: number) => void;
}

/** Resolves a model name in the cache, or a directory path, to a directory. */
export function resolveModelDir(nameOrDir: string): string {
  if (nameOrDir.includes(path.sep) || nameOrDir.startsWith('.')) {
    if (!existsSync(nameOrDir)) throw new Img2PromptError(nameOrDir, 'model directory not found', { code: 'MODEL_MISSING' });
    return path.resolve(nameOrDir);
  }
  const dir = modelDir(nameOrDir);
  if (!existsSync(dir)) {
    throw new Img2PromptError(
      dir,
      `model "${nameOrDir}" is not installed: run \`img2prompt models pull ${nameOrDir}\`, \`img2prompt models import DIR --name ${nameOrDir}\` or \`img2prompt models random --name ${nameOrDir}\``, { code: 'MODEL_MISSING' },
    );
  }
  return dir;
}

async function loadTokenizer(dir: string, kind: ClipTokenizerKind, contextLength: number): Promise<ClipTokenizer> {
  for (const f of ['tokenizer.json', 'vocab.json', 'bpe_simple_vocab_16e6.txt.gz']) {
    if (existsSync(path.join(dir, f))) return ClipTokenizer.load(f === 'tokenizer.json' || f === 'vocab.json' ? dir : path.join(dir, f), { kind, contextLength });
  }
  throw new Img2PromptError(dir, 'no CLIP tokenizer here (tokenizer.json, vocab.json + merges.txt or bpe_simple_vocab_16e6.txt.gz)', { code: 'MODEL_MISSING' });
}

/**
 * A CLIP model on the native runtime: image and text towers as ONNX sessions, CLIP preprocessing and
 * tokenization. Embeddings come out L2-normalised, so dot products are cosines: the towers are where
 * the unit-rows contract of src/util/rows.ts is kept, and nothing downstream normalises them again.
 */
export class ClipModel implements ClipTextSide {
  private constructor(
    readonly dir: string,
    readonly name: string,
    readonly files: ClipOnnxFiles,
    readonly random: boolean,
    private readonly vision: Session | undefined,
    private readonly text: Session | undefined,
    readonly tokenizer: ClipTokenizer | undefined,
    private readonly visionIo: TowerIo | undefined,
    private readonly textIo: TowerIo | undefined,
    private readonly openOptions: ClipOpenOptions,
    /** Whose image preprocessing this model's images get. */
    readonly imageProcessor: ClipImageProcessor,
  ) {}

  /** The prefix-cached text tower, opened on first use; null when this model has none (a ready export). */
  private prefixEncoder: Promise<ClipPrefixEncoder | null> | undefined;

  static async open(nameOrDir: string, options: ClipOpenOptions = {}): Promise<ClipModel> {
    options = checkOpenOptions(options);
    const dir = resolveModelDir(nameOrDir);
    const requested = requestedPrecision(options.precision);
    const model = await ClipModel.openAs(dir, options, requested ?? precisionFor(options.sessionOptions?.providers ?? defaultProviders()));
    if (requested || model.precision !== 'fp16' || model.provider === 'cuda') return model;
    // CUDA was expected but the session fell back to the CPU, where fp16 only adds casts.
    model.close();
    return ClipModel.openAs(dir, options, 'fp32');
  }

  private static async openAs(dir: string, options: ClipOpenOptions, precision: Precision): Promise<ClipModel> {
    const towers = options.towers ?? ['vision', 'text'];
    const files = await ensureClipOnnx(dir, { precision, ...(options.quickGelu === undefined ? {} : { quickGelu: options.quickGelu }) });
    const record = await readInstallRecord(dir).catch(() => undefined);
    const vision = towers.includes('vision') ? await Session.open(files.vision, options.sessionOptions) : undefined;
    const text = towers.includes('text') ? await Session.open(files.text, options.sessionOptions) : undefined;
    try {
      // The sessions' own input/output names decide what is fed and which output is read.
      const visionIo = vision && classifyTower(files.vision, ioNames(vision), 'vision');
      const textIo = text && classifyTower(files.text, ioNames(text), 'text');
      const tokenizer = towers.includes('text') ? await loadTokenizer(dir, options.tokenizerKind ?? files.layout, files.config.text.contextLength) : undefined;
      const imageProcessor = options.imageProcessor ?? files.layout;
      return new ClipModel(dir, path.basename(dir), files, record?.random ?? false, vision, text, tokenizer, visionIo, textIo, options, imageProcessor);
    } catch (err) {
      vision?.close();
      text?.close();
      throw err;
    }
  }

  get config(): ClipConfig {
    return this.files.config;
  }

  /** Width of the joint embedding space. */
  get dim(): number {
    return this.files.config.embedDim;
  }

  get imageSize(): number {
    return this.files.config.vision.imageSize;
  }

  /** How images are turned into this model's pixel_values: size, normalisation and processor. */
  get imageTransform(): ClipTransformOptions & { processor: ClipImageProcessor } {
    return { size: this.imageSize, mean: this.config.imageMean, std: this.config.imageStd, processor: this.imageProcessor };
  }

  /** sha256 of the weights (label-bank caches built with other weights are rebuilt). */
  get weightHash(): string {
    return this.files.weightHash;
  }

  /** How texts become token ids (see ClipTokenizer.identity): label-bank caches built from other ids are rebuilt. */
  get tokenizerId(): string {
    return this.need(this.tokenizer, 'text').identity;
  }

  /** Stable identity for caches: directory name plus the weights' hash. */
  get modelId(): string {
    return `${this.name}@${this.files.weightHash.slice(0, 16)}`;
  }

  /** Precision of the built towers; undefined for a ready export. */
  get precision(): Precision | undefined {
    return this.files.precision;
  }

  get provider(): ExecutionProvider {
    return (this.vision ?? this.text)!.provider;
  }

  /**
   * The vision tower on preprocessed pixels [batch, 3, N, N] → [batch, dim] unit rows (see
   * normaliseTowerRows). encodeImages returns these rows too.
   */
  async encodePixels(pixels: Float32Array, batch: number): Promise<Float32Array> {
    const session = this.need(this.vision, 'vision');
    const n = this.imageSize;
    const out = await session.run({ pixel_values: tensor('float32', pixels.subarray(0, batch * 3 * n * n), [batch, 3, n, n]) }, { outputNames: [this.visionOutput()] });
    return normaliseTowerRows(out[this.visionOutput()]!.data as Float32Array, this.dim);
  }

  /**
   * The one CLIP batch loop (encodeImages, the predict and interrogate engines): decodes, preprocesses
   * and encodes `images` in batches of `batchSize`, in order, decoding batch k+1 while batch k is in
   * the vision tower. Batch k is always images [k·B, (k+1)·B), so a caller that restarts from batch k
   * (a resumed run) sees the same batches. Unreadable images are reported, not thrown.
   */
  async *encodeBatches(images: readonly ImageInput[] | ImageList, options: EncodeBatchesOptions = {}): AsyncGenerator<EncodedBatch, void, undefined> {
    options = checkEncodeImagesOptions(options, 'ClipModel.encodeBatches()', false);
    this.need(this.vision, 'vision');
    const batchSize = options.batchSize ?? DEFAULT_IMAGE_BATCH;
    let start = 0;
    for await (const batch of loadBatches(images, {
      ...this.imageTransform,
      batchSize,
      concurrency: options.concurrency,
      maxPixels: options.maxPixels,
      allowSvg: options.allowSvg,
      exif: options.exif,
    })) {
      const rows = batch.ids.length;
      const count = rows + batch.failures.length;
      const t0 = performance.now();
      const embeds = rows > 0 ? await this.encodePixels(batch.pixels, rows) : new Float32Array(0);
      const inferenceSeconds = rows > 0 ? (performance.now() - t0) / 1000 : 0;
      yield { start, count, loaded: batch.loaded, ids: batch.ids, files: batch.files, embeds, failures: batch.failures, inferenceSeconds };
      start += count;
    }
  }

  /** Decode, preprocess and encode images into one matrix (see encodeBatches); decoding of batch k+1 overlaps inference of batch k. */
  async encodeImages(files: readonly ImageInput[], options: EncodeImagesOptions = {}): Promise<EncodedImages> {
    options = checkEncodeImagesOptions(options, 'ClipModel.encodeImages()', true);
    const { onProgress, onFailure, ...batchOptions } = options;
    const ids: string[] = [];
    const okFiles: string[] = [];
    const failures: ImageFailure[] = [];
    const chunks: Float32Array[] = [];
    let inferenceSeconds = 0;
    for await (const batch of this.encodeBatches(files, batchOptions)) {
      for (const { file, reason } of batch.failures) {
        failures.push({ file, reason });
        onFailure?.({ file, reason });
      }
      if (batch.ids.length > 0) {
        chunks.push(batch.embeds);
        inferenceSeconds += batch.inferenceSeconds;
        ids.push(...batch.ids);
        okFiles.push(...batch.files);
      }
      onProgress?.(batch.start + batch.count, files.length);
    }
    return { ids, files: okFiles, embeds: concat(chunks, ids.length * this.dim), failures, inferenceSeconds };
  }

  /** CLIP tokens of `text` including start and end tokens (the limit is 77). */
  countTokens(text: string): number {
    return this.need(this.tokenizer, 'text').countTokens(text);
  }

  /** countTokens(prefix + joiner + addition), reusing the prefix's count where it can (ClipTokenizer.countTokensJoined). */
  countTokensJoined(prefix: string, prefixCount: number, joiner: string, addition: string): number {
    return this.need(this.tokenizer, 'text').countTokensJoined(prefix, prefixCount, joiner, addition);
  }

  /**
   * Encode texts → [texts.length, dim] unit rows (see normaliseTowerRows). With dynamic padding
   * texts are sorted by token length and each batch is padded to its longest member; the causal
   * mask and EOT pooling make this exact.
   */
  async encodeTexts(texts: string[], options: EncodeTextsOptions = {}): Promise<Float32Array> {
    const session = this.need(this.text, 'text');
    const tokenizer = this.need(this.tokenizer, 'text');
    const o = readOptions(options, 'ClipModel.encodeTexts()');
    const batchSize = o.int('batchSize', { min: 1 }) ?? 64;
    const dynamic = (o.oneOf('padding', ['dynamic', 'fixed']) ?? 'dynamic') === 'dynamic';
    const onProgress = o.func<NonNullable<EncodeTextsOptions['onProgress']>>('onProgress');
    o.done();
    const seqs = texts.map((t) => tokenizer.encode(t));
    const order = seqs.map((_, i) => i);
    if (dynamic) order.sort((a, b) => seqs[a]!.length - seqs[b]!.length || a - b);
    const out = new Float32Array(texts.length * this.dim);
    const padId = padIdFor('open_clip');
    const outputName = this.textOutput();
    for (let start = 0; start < order.length; start += batchSize) {
      const rows = order.slice(start, start + batchSize);
      const batch = padClipBatch(rows.map((r) => seqs[r]!), dynamic ? 'longest' : this.config.text.contextLength, padId);
      const feeds: Record<string, ReturnType<typeof tensor>> = { input_ids: tensor('int64', batch.inputIds, [batch.batch, batch.seqLen]) };
      if (this.textIo!.attentionMask) {
        const mask = new BigInt64Array(batch.batch * batch.seqLen);
        rows.forEach((r, i) => mask.fill(1n, i * batch.seqLen, i * batch.seqLen + seqs[r]!.length));
        feeds.attention_mask = tensor('int64', mask, [batch.batch, batch.seqLen]);
      }
      const res = await session.run(feeds, { outputNames: [outputName] });
      const emb = normaliseTowerRows(res[outputName]!.data as Float32Array, this.dim);
      rows.forEach((r, i) => out.set(emb.subarray(i * this.dim, (i + 1) * this.dim), r * this.dim));
      onProgress?.(Math.min(start + batchSize, texts.length), texts.length);
    }
    return out;
  }

  /**
   * Like encodeTexts, for texts that mostly start with the same words (a greedy chain's "<prompt>,
   * <label>" candidates): the shared token prefix runs once and each text only its own remaining
   * tokens (ClipPrefixEncoder). Embeddings equal encodeTexts' to float rounding (~2e-7), so they are
   * unit rows too (normalised in the prefix graph, within rowsAreUnit's tolerance). A model
   * without a prefix-cached graph (a ready ONNX export) falls back to encodeTexts.
   */
  async encodeTextsSharingPrefix(texts: string[]): Promise<Float32Array> {
    const tokenizer = this.need(this.tokenizer, 'text');
    this.prefixEncoder ??= this.openPrefixEncoder();
    const encoder = await this.prefixEncoder;
    if (!encoder) return this.encodeTexts(texts);
    return encoder.encode(texts.map((t) => tokenizer.encode(t)));
  }

  private async openPrefixEncoder(): Promise<ClipPrefixEncoder | null> {
    const quickGelu = this.openOptions.quickGelu;
    const file = await ensureClipTextPrefixOnnx(this.dir, this.files, quickGelu === undefined ? {} : { quickGelu });
    if (!file || this.closed) return null;
    return new ClipPrefixEncoder(await Session.open(file, this.openOptions.sessionOptions), this.config);
  }

  private closed = false;

  close(): void {
    this.closed = true;
    this.vision?.close();
    this.text?.close();
    // A prefix encoder that is still opening is closed as soon as it has opened.
    void this.prefixEncoder?.then((e) => e?.close(), () => {});
  }

  private visionOutput(): string {
    return this.visionIo!.output;
  }

  private textOutput(): string {
    return this.textIo!.output;
  }

  private need<T>(value: T | undefined, tower: string): T {
    if (value === undefined) throw new Img2PromptError(this.dir, `the ${tower} tower was not loaded (see ClipOpenOptions.towers)`);
    return value;
  }
}

/** ClipModel.open's options, checked (unknown keys refused) before anything is loaded. */
function checkOpenOptions(options: ClipOpenOptions): ClipOpenOptions {
  const o = readOptions(options, 'ClipModel.open()');
  const checked: ClipOpenOptions = {
    sessionOptions: o.object<SessionOptions>('sessionOptions'),
    towers: o.subsetOf('towers', ['vision', 'text']),
    quickGelu: o.bool('quickGelu'),
    tokenizerKind: o.oneOf('tokenizerKind', ['open_clip', 'hf']),
    imageProcessor: o.oneOf('imageProcessor', CLIP_IMAGE_PROCESSORS),
    precision: o.oneOf('precision', PRECISIONS),
  };
  o.done();
  return checked;
}

/** The options of encodeImages (with its callbacks) or encodeBatches (without), checked. */
function checkEncodeImagesOptions(options: EncodeImagesOptions, call: string, callbacks: boolean): EncodeImagesOptions {
  const o = readOptions(options, call);
  const checked: EncodeImagesOptions = {
    batchSize: o.int('batchSize', { min: 1 }),
    concurrency: o.int('concurrency', { min: 1 }),
    ...(callbacks ? { onProgress: o.func('onProgress'), onFailure: o.func('onFailure') } : {}),
    maxPixels: o.int('maxPixels', { min: 1 }),
    exif: o.oneOf('exif', EXIF_MODES),
    allowSvg: o.bool('allowSvg'),
  };
  o.done();
  return checked;
}

function ioNames(session: Session): { inputs: string[]; outputs: string[] } {
  return { inputs: session.inputs.map((i) => i.name), outputs: session.outputs.map((o) => o.name) };
}

/**
 * L2-normalises a tower's output rows in place and returns them: ready ONNX exports give raw
 * projections, and our graphs' in-graph float32 normalisation is redone here so every model's rows
 * come out of the same arithmetic. The 1e-12 floor is torch's F.normalize eps (it only matters for
 * rows shorter than that); a zero row stays zero and a non-finite row is left as it is, for the
 * callers to refuse.
 */
export function normaliseTowerRows(m: Float32Array, dim: number): Float32Array {
  normalizeRowsInPlace(m, dim, { minNorm: 1e-12 });
  return m;
}

function concat(chunks: Float32Array[], length: number): Float32Array {
  const out = new Float32Array(length);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}


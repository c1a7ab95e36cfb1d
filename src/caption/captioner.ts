import path from 'node:path';
import { Session, defaultProviders, tensor, type ExecutionProvider, type SessionOptions } from '../runtime/session.js';
import { Img2PromptError } from '../util/errors.js';
import { readInstallRecord } from '../models/cache.js';
import { resolveModelDir } from '../clip/model.js';
import { loadBatches } from '../image/batch-loader.js';
import type { FormatOptions } from '../image/image-formats.js';
import { EXIF_MODES, type ExifMode } from '../image/decode.js';
import type { ImageInput } from '../image/image-input.js';
import { toImageList, type ImageList } from '../image/image-list.js';
import { Engine } from '../engine/engine.js';
import { imageTokenCount, type CaptionConfig } from './config.js';
import { ensureCaptionOnnx, type CaptionOnnxFiles } from './onnx-cache.js';
import { CaptionTokenizer } from './tokenizer.js';
import { OnnxDecoderStepper, type ImageKeysValues, type KvArray } from './onnx-stepper.js';
import { ExportDecoderStepper, type ImageTokens } from './export-stepper.js';
import type { DecoderStepper } from './decoder-stepper.js';
import { generateCaptions, readGenerationOptions, resolveGenerationOptions, type GenerationOptions } from './generate.js';
import { readOptions } from '../util/options.js';
import { PRECISIONS, precisionFor, requestedPrecision, type Precision } from '../runtime/precision.js';

/**
 * An image captioner (BLIP or GIT, from a Hugging Face folder) on the native runtime:
 *
 *   await using captioner = await Captioner.open({ model: 'blip-large' });
 *   for await (const r of captioner.run(files, { numBeams: 8, prefix: 'a picture of' })) console.log(r.id, r.caption);
 *
 * It has the shape of every engine (engine/engine.ts): open once, run over paths or `{ id, data }`
 * bytes streaming one result per input in order, close.
 * Each batch of images is encoded once (the image graph), then decoded step by step with a key/value
 * cache: a step feeds only the new token of each beam. Images are preprocessed as the model's
 * processor does (BLIP: the whole image resized to 384×384; GIT: short side resized, centre crop).
 */

/** The captioner of the CLIP Interrogator and of the reference notebook. */
export const DEFAULT_CAPTION_MODEL = 'blip-large';

export interface CaptionerOpenOptions {
  /** Captioner in the cache (models pull/import/random) or a model folder; default DEFAULT_CAPTION_MODEL. */
  model?: string;
  sessionOptions?: SessionOptions;
  /** Cancels the open (building the graphs of a large model takes a while). */
  signal?: AbortSignal;
  /**
   * Graphs built from the checkpoint in 'fp32' or 'fp16' (half weights, image keys/values and cache;
   * scores, softmax and logits in float32). Default: IMG2PROMPT_PRECISION, else fp16 when the
   * session is tried on CUDA first and fp32 on the CPU. A ready export runs as exported.
   */
  precision?: Precision;
}


export interface CaptionOptions extends GenerationOptions {
  /** Text the caption continues (BLIP's original captioner used "a picture of "); not part of the result. */
  prefix?: string;
}

export interface CaptionFilesOptions extends CaptionOptions, FormatOptions {
  /** Images encoded and decoded together (default 8). */
  batchSize?: number;
  /** Images over this many pixels fail without being decoded (see decodeImage). */
  maxPixels?: number;
  /** EXIF orientation: 'apply' (default) or 'ignore', as the Python pipelines do (see decodeImage). */
  exif?: ExifMode;
  onProgress?: (done: number, total: number) => void;
}

export interface Caption {
  caption: string;
  /** The whole generated sequence (start token, prefix, caption tokens, the end token if generated). */
  tokens: number[];
}

/** One image's outcome: a caption, or why the image could not be read. */
export type CaptionResult = {
  /** Position in the input list. */
  index: number;
  /** The file name without its extension, or the id given with bytes. */
  id: string;
  /** The path, or `<id>` for bytes. */
  file: string;
} & ({ caption: string; tokens: number[]; failure?: undefined } | { failure: string; caption?: undefined; tokens?: undefined });

export class Captioner extends Engine {
  protected readonly engineName = 'Captioner';

  private constructor(
    readonly dir: string,
    readonly files: CaptionOnnxFiles,
    readonly tokenizer: CaptionTokenizer,
    /** True for a checkpoint with random weights (tests and benchmarks): its captions mean nothing. */
    readonly random: boolean,
    private readonly image: Session,
    private readonly decoder: Session,
  ) {
    super();
  }

  /**
   * Opens a captioner: `Captioner.open({ model: 'blip-large' })`, or `Captioner.open('blip-large')`
   * for short. Builds the ONNX graphs from the checkpoint on first use (cached beside it).
   *
   * @throws {Img2PromptError} naming the folder and the fix when the model is not installed or its
   *   weights or tokenizer are unusable; the signal's reason when `options.signal` aborts the open.
   */
  static async open(modelOrOptions: string | CaptionerOpenOptions = {}, more: CaptionerOpenOptions = {}): Promise<Captioner> {
    const given = typeof modelOrOptions === 'string' ? { ...more, model: modelOrOptions } : modelOrOptions;
    const o = readOptions(given, 'Captioner.open()');
    const options: CaptionerOpenOptions = {
      model: o.string('model'),
      sessionOptions: o.object<SessionOptions>('sessionOptions'),
      signal: o.object<AbortSignal>('signal'),
      precision: o.oneOf('precision', PRECISIONS),
    };
    o.done();
    options.signal?.throwIfAborted();
    const dir = resolveModelDir(options.model ?? DEFAULT_CAPTION_MODEL);
    const requested = requestedPrecision(options.precision);
    const captioner = await Captioner.openAs(dir, options, requested ?? precisionFor(options.sessionOptions?.providers ?? defaultProviders()));
    if (requested || captioner.files.precision !== 'fp16' || captioner.provider === 'cuda') return captioner;
    // CUDA was expected but the sessions fell back to the CPU, where fp16 only adds casts.
    captioner.close();
    return Captioner.openAs(dir, options, 'fp32');
  }

  private static async openAs(dir: string, options: CaptionerOpenOptions, precision: Precision): Promise<Captioner> {
    const files = await ensureCaptionOnnx(dir, precision);
    options.signal?.throwIfAborted();
    const tokenizer = await CaptionTokenizer.load(dir, files.config);
    const record = await readInstallRecord(dir).catch(() => undefined);
    const image = await Session.open(files.image, options.sessionOptions);
    try {
      const decoder = await Session.open(files.decoder, options.sessionOptions);
      return new Captioner(dir, files, tokenizer, record?.random ?? false, image, decoder);
    } catch (err) {
      image.close();
      throw err;
    }
  }

  get config(): CaptionConfig {
    return this.files.config;
  }

  /** Stable identity for caches and checkpoints: the folder name plus the weights' hash (like ClipModel.modelId). */
  get modelId(): string {
    return `${path.basename(this.dir)}@${this.files.weightHash.slice(0, 16)}`;
  }

  get provider(): ExecutionProvider {
    return this.image.provider;
  }

  /** Floats of one preprocessed image: 3 × size × size. */
  get floatsPerImage(): number {
    return 3 * this.config.image.size ** 2;
  }

  /**
   * Runs the image graph on preprocessed pixels [count, 3, size, size]: each decoder layer's image keys
   * and values (graphs built here), or the image tokens (a ready export, whose decoder projects them
   * at every step).
   */
  async encodePixels(pixels: Float32Array, count: number): Promise<ImageKeysValues | ImageTokens> {
    const n = this.config.image.size;
    if (!Number.isInteger(count) || count < 1 || pixels.length < count * this.floatsPerImage) {
      throw new RangeError(`encodePixels: ${pixels.length} floats do not hold ${count} images of 3x${n}x${n}`);
    }
    const input = { pixel_values: tensor('float32', pixels.subarray(0, count * this.floatsPerImage), [count, 3, n, n]) };
    const io = this.files.exportIo;
    if (io) {
      const out = (await this.image.run(input, { outputNames: [io.image.output] }))[io.image.output]!;
      const [, tokens, width] = out.dims;
      if (out.dims.length !== 3 || tokens !== imageTokenCount(this.config.vision) || width !== this.config.vision.width) {
        throw new Img2PromptError(this.files.image, `${io.image.output} is [${out.dims.join(', ')}], expected [${count}, ${imageTokenCount(this.config.vision)}, ${this.config.vision.width}] from config.json`, { code: 'MODEL_MISMATCH' });
      }
      return { images: count, tokens: tokens!, width: width!, hidden: out.data as Float32Array };
    }
    const layers = this.config.text.layers;
    const names = Array.from({ length: layers }, (_, i) => [`image_key_${i}`, `image_value_${i}`]).flat();
    const out = await this.image.run(input, { outputNames: names });
    return {
      images: count,
      keys: Array.from({ length: layers }, (_, i) => out[`image_key_${i}`]!.data as KvArray),
      values: Array.from({ length: layers }, (_, i) => out[`image_value_${i}`]!.data as KvArray),
    };
  }

  /** A decoder over encoded images, for driving steps directly (tests, other searches). */
  decoderFor(encoded: ImageKeysValues | ImageTokens): DecoderStepper<unknown> {
    const io = this.files.exportIo;
    if ('hidden' in encoded) {
      if (!io) throw new TypeError('decoderFor: image tokens are what a ready export encodes; this captioner\'s graphs take keys and values');
      return new ExportDecoderStepper(this.decoder, io.decoder, this.config, encoded);
    }
    return new OnnxDecoderStepper(this.decoder, this.config, encoded, imageTokenCount(this.config.vision));
  }

  /** Captions preprocessed pixels [count, 3, size, size], in order. */
  async captionPixels(pixels: Float32Array, count: number, options: CaptionOptions = {}): Promise<Caption[]> {
    const o = readOptions(options, 'Captioner.captionPixels()');
    options = { ...readGenerationOptions(o), prefix: o.string('prefix') };
    o.done();
    const settings = this.settings(options);
    const prompt = this.tokenizer.prompt(options.prefix ?? '');
    const encoded = await this.encodePixels(pixels, count);
    const generated = await generateCaptions(this.decoderFor(encoded), count, prompt, settings, this.config.tokens.eos);
    return generated.map((g) => ({ caption: this.tokenizer.decode(g.tokens.slice(prompt.length)), tokens: g.tokens }));
  }

  /** Generation options checked, also against this model's position table. */
  private settings(options: CaptionOptions) {
    const settings = resolveGenerationOptions(options);
    const positions = this.config.text.maxPositions;
    if (settings.maxLength > positions) throw new Img2PromptError(this.dir, `maxLength ${settings.maxLength} exceeds the ${positions} positions of this model's decoder`);
    return settings;
  }

  /**
   * Decodes, preprocesses and captions `inputs` (file paths or `{ id, data }` bytes), yielding one
   * result per input in input order as soon as its batch is done. An image that cannot be read yields
   * a failure and the rest go on.
   */
  run(inputs: Iterable<ImageInput> | ImageList, options: CaptionFilesOptions = {}): AsyncGenerator<CaptionResult, void, undefined> {
    this.checkOpen();
    const o = readOptions(options, 'Captioner.run()');
    // What captionPixels takes: the generation settings and the prefix.
    const captionOptions: CaptionOptions = { ...readGenerationOptions(o), prefix: o.string('prefix') };
    const batchSize = o.int('batchSize', { min: 1 }) ?? 8;
    const checked: CaptionFilesOptions = {
      ...captionOptions,
      maxPixels: o.int('maxPixels', { min: 1 }),
      allowSvg: o.bool('allowSvg'),
      exif: o.oneOf('exif', EXIF_MODES),
      onProgress: o.func<NonNullable<CaptionFilesOptions['onProgress']>>('onProgress'),
    };
    o.done();
    this.settings(captionOptions);
    return this.captionAll(toImageList(inputs, 'Captioner.run()'), batchSize, captionOptions, checked);
  }

  private async *captionAll(
    images: ImageList, batchSize: number, captionOptions: CaptionOptions, options: CaptionFilesOptions,
  ): AsyncGenerator<CaptionResult, void, undefined> {
    const image = this.config.image;
    const batches = loadBatches(images, {
      batchSize,
      size: image.size,
      mean: image.mean,
      std: image.std,
      processor: image.processor,
      maxPixels: options.maxPixels,
      allowSvg: options.allowSvg,
      exif: options.exif,
    });
    let start = 0;
    try {
      for await (const batch of batches) {
        this.checkOpen();
        const count = batch.ids.length + batch.failures.length;
        const failed = new Map(batch.failures.map((f) => [f.index, f.reason]));
        const captions = batch.ids.length > 0 ? await this.captionPixels(batch.pixels, batch.ids.length, captionOptions) : [];
        const rowOf = new Map(batch.loaded.map((position, row) => [position, row]));
        const inputs = await images.slice(start, start + count);
        for (let index = start; index < start + count; index++) {
          const { id, label: file } = inputs[index - start]!;
          const failure = failed.get(index);
          const row = rowOf.get(index);
          const c = row === undefined ? undefined : captions[row];
          yield failure !== undefined || !c ? { index, id, file, failure: failure ?? 'not captioned' } : { index, id, file, caption: c.caption, tokens: c.tokens };
        }
        start += count;
        options.onProgress?.(start, images.length);
      }
    } catch (err) {
      // Closed during the run: say so, rather than what a closed session said.
      if (this.closed) this.checkOpen();
      throw err;
    }
  }

  protected release(): void {
    this.image.close();
    this.decoder.close();
  }
}

import { Session, tensor, type ExecutionProvider, type SessionOptions } from '../runtime/session.js';
import { Img2PromptError } from '../util/errors.js';
import { readInstallRecord } from '../models/cache.js';
import { resolveModelDir } from '../clip/model.js';
import { loadBatches } from '../image/batch-loader.js';
import type { FormatOptions } from '../image/image-formats.js';
import { imageIdOf } from '../image/image-id.js';
import { imageTokenCount, type CaptionConfig } from './config.js';
import { ensureCaptionOnnx, type CaptionOnnxFiles } from './onnx-cache.js';
import { CaptionTokenizer } from './tokenizer.js';
import { OnnxDecoderStepper, type ImageKeysValues } from './onnx-stepper.js';
import { generateCaptions, readGenerationOptions, resolveGenerationOptions, type GenerationOptions } from './generate.js';
import { readOptions } from '../util/options.js';

/**
 * An image captioner (BLIP or GIT, from a Hugging Face folder) on the native runtime:
 *
 *   const captioner = await Captioner.open('blip-large');
 *   for await (const r of captioner.caption(files, { numBeams: 8, prefix: 'a picture of' })) console.log(r.id, r.caption);
 *   captioner.close();
 *
 * Each batch of images is encoded once (the image graph), then decoded step by step with a key/value
 * cache: a step feeds only the new token of each beam. Images are preprocessed as the model's
 * processor does (BLIP: the whole image resized to 384×384; GIT: short side resized, centre crop).
 */

/** The captioner of the CLIP Interrogator and of the reference notebook. */
export const DEFAULT_CAPTION_MODEL = 'blip-large';

export interface CaptionerOpenOptions {
  sessionOptions?: SessionOptions;
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
  onProgress?: (done: number, total: number) => void;
}

export interface Caption {
  caption: string;
  /** The whole generated sequence (start token, prefix, caption tokens, the end token if generated). */
  tokens: number[];
}

/** One image's outcome: a caption, or why the image could not be read. */
export type CaptionResult = { id: string; file: string } & ({ caption: string; tokens: number[]; failure?: undefined } | { failure: string; caption?: undefined; tokens?: undefined });

export class Captioner {
  private constructor(
    readonly dir: string,
    readonly files: CaptionOnnxFiles,
    readonly tokenizer: CaptionTokenizer,
    /** True for a checkpoint with random weights (tests and benchmarks): its captions mean nothing. */
    readonly random: boolean,
    private readonly image: Session,
    private readonly decoder: Session,
  ) {}

  static async open(nameOrDir: string, options: CaptionerOpenOptions = {}): Promise<Captioner> {
    const o = readOptions(options, 'Captioner.open()');
    options = { sessionOptions: o.object<SessionOptions>('sessionOptions') };
    o.done();
    const dir = resolveModelDir(nameOrDir);
    const files = await ensureCaptionOnnx(dir);
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

  get provider(): ExecutionProvider {
    return this.image.provider;
  }

  /** Floats of one preprocessed image: 3 × size × size. */
  get floatsPerImage(): number {
    return 3 * this.config.image.size ** 2;
  }

  /** Runs the image graph on preprocessed pixels [count, 3, size, size]: each decoder layer's image keys and values. */
  async encodePixels(pixels: Float32Array, count: number): Promise<ImageKeysValues> {
    const n = this.config.image.size;
    if (!Number.isInteger(count) || count < 1 || pixels.length < count * this.floatsPerImage) {
      throw new RangeError(`encodePixels: ${pixels.length} floats do not hold ${count} images of 3x${n}x${n}`);
    }
    const layers = this.config.text.layers;
    const names = Array.from({ length: layers }, (_, i) => [`image_key_${i}`, `image_value_${i}`]).flat();
    const out = await this.image.run({ pixel_values: tensor('float32', pixels.subarray(0, count * this.floatsPerImage), [count, 3, n, n]) }, { outputNames: names });
    return {
      images: count,
      keys: Array.from({ length: layers }, (_, i) => out[`image_key_${i}`]!.data as Float32Array),
      values: Array.from({ length: layers }, (_, i) => out[`image_value_${i}`]!.data as Float32Array),
    };
  }

  /** A decoder over encoded images, for driving steps directly (tests, other searches). */
  decoderFor(encoded: ImageKeysValues): OnnxDecoderStepper {
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
   * Decodes, preprocesses and captions image files, yielding one result per file in input order as
   * soon as its batch is done. An image that cannot be read yields a failure and the rest go on.
   */
  async *caption(files: readonly string[], options: CaptionFilesOptions = {}): AsyncGenerator<CaptionResult, void, undefined> {
    const o = readOptions(options, 'Captioner.caption()');
    // What captionPixels takes: the generation settings and the prefix.
    const captionOptions: CaptionOptions = { ...readGenerationOptions(o), prefix: o.string('prefix') };
    const batchSize = o.int('batchSize', { min: 1 }) ?? 8;
    const maxPixels = o.int('maxPixels', { min: 1 });
    const allowSvg = o.bool('allowSvg');
    const onProgress = o.func<NonNullable<CaptionFilesOptions['onProgress']>>('onProgress');
    o.done();
    this.settings(captionOptions);
    const image = this.config.image;
    const batches = loadBatches(files, {
      batchSize,
      size: image.size,
      mean: image.mean,
      std: image.std,
      processor: image.processor,
      maxPixels,
      allowSvg,
    });
    let start = 0;
    for await (const batch of batches) {
      // A batch is the next slice of `files`: its loaded images in order, its failures listed apart.
      const slice = files.slice(start, start + batch.ids.length + batch.failures.length);
      start += slice.length;
      const failed = new Map(batch.failures.map((f) => [f.file, f.reason]));
      const captions = batch.ids.length > 0 ? await this.captionPixels(batch.pixels, batch.ids.length, captionOptions) : [];
      const byFile = new Map(batch.files.map((f, i) => [f, captions[i]!]));
      for (const file of slice) {
        const id = imageIdOf(file);
        const failure = failed.get(file);
        const c = byFile.get(file);
        yield failure !== undefined || !c ? { id, file, failure: failure ?? 'not captioned' } : { id, file, caption: c.caption, tokens: c.tokens };
      }
      onProgress?.(start, files.length);
    }
  }

  close(): void {
    this.image.close();
    this.decoder.close();
  }
}

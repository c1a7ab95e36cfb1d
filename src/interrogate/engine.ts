/**
 * The CLIP Interrogator engine: a CLIP model and its label banks, opened once (building the bank
 * caches when needed: minutes on a first run), for any number of runs. A run encodes its images one
 * CLIP batch at a time and hands out each batch's prompts before encoding the next, so memory stays
 * O(batch) however long the list.
 */
import { ClipModel, DEFAULT_CLIP_MODEL } from '../clip/model.js';
import { DEFAULT_IMAGE_BATCH } from '../image/batch-loader.js';
import type { ImageInput } from '../image/image-input.js';
import { loaderInput, toImageList, type ImageList } from '../image/image-list.js';
import { checkInterrogateEngineOptions, checkInterrogateRunOptions } from './options.js';
import { Engine } from '../engine/engine.js';
import { Img2PromptError } from '../util/errors.js';
import { Interrogator } from './interrogator.js';
import { Captioner } from '../caption/captioner.js';
import { captionBatch } from '../caption/caption-batch.js';
import { DEFAULT_BANK_DTYPE } from './types.js';
import type { InterrogateEngineOptions, InterrogateRunOptions, InterrogatedImage } from './run-types.js';

/** An opened CLIP model with its label banks; run() interrogates images, close() frees both. */
export class InterrogateEngine extends Engine {
  protected readonly engineName = 'InterrogateEngine';

  private constructor(
    /** The CLIP model (towers, tokenizer, preprocessing). */
    readonly clip: ClipModel,
    /** The label banks and modes. */
    readonly interrogator: Interrogator,
    /** The captioner whose caption heads each prompt, when one was asked for. */
    readonly captioner: Captioner | undefined,
  ) {
    super();
  }

  /**
   * Opens the CLIP model and every label bank through the cache; banks rank on the GPU when the model
   * runs on CUDA.
   *
   * @example
   * ```ts
   * import { readFile } from 'node:fs/promises';
   * import { InterrogateEngine } from 'img2prompt';
   *
   * await using engine = await InterrogateEngine.open({ model: 'clip-vit-b-32' });
   * for await (const r of engine.run(['a.png', { id: 'upload-1', data: await readFile('b.jpg') }], { mode: 'best' })) {
   *   console.log(r.id, r.prompt ?? r.failure);
   * }
   * ```
   * @throws {Img2PromptError} naming the file and the fix when the model is not installed or a label
   *   list is unreadable; the signal's reason when `options.signal` aborts the open.
   */
  static async open(options: InterrogateEngineOptions = {}): Promise<InterrogateEngine> {
    return InterrogateEngine.openChecked(checkInterrogateEngineOptions(options, 'InterrogateEngine.open()'));
  }

  /** @internal open() on options already checked (interrogate() checks them under its own name). */
  static async openChecked(options: InterrogateEngineOptions): Promise<InterrogateEngine> {
    options.signal?.throwIfAborted();
    const clip = await ClipModel.open(options.model ?? DEFAULT_CLIP_MODEL, { imageProcessor: options.imageProcessor });
    let captioner: Captioner | undefined;
    try {
      if (clip.random) options.onNotice?.(`warning: ${clip.name} has RANDOM weights: its labels and prompts mean nothing`);
      if (options.captionModel !== undefined) {
        captioner = await Captioner.open({ model: options.captionModel, signal: options.signal });
        if (captioner.random) options.onNotice?.(`warning: captioner ${captioner.modelId} has RANDOM weights: its captions mean nothing`);
      }
      const interrogator = await Interrogator.open(clip, {
        labelsDir: options.labelsDir,
        extraLabels: options.labels,
        dtype: options.dtype ?? DEFAULT_BANK_DTYPE,
        rankProviders: [clip.provider],
        signal: options.signal,
        onChunk: options.onChunk,
        onProgress: options.onBankProgress,
        onBank: options.onBank,
      });
      return new InterrogateEngine(clip, interrogator, captioner);
    } catch (err) {
      captioner?.close();
      clip.close();
      throw err;
    }
  }

  /**
   * Interrogates `inputs` — file paths and `{ id, data }` items of encoded image bytes — and streams one
   * result per input, in input order; an input that cannot be read comes out with its `failure` and a
   * null prompt, and the run goes on.
   *
   * @throws {Img2PromptError} before the first result for an unknown mode, a bad count or ids that are
   *   not unique; when the engine is closed.
   */
  run(inputs: Iterable<ImageInput> | ImageList, options: InterrogateRunOptions = {}): AsyncGenerator<InterrogatedImage, void, undefined> {
    return this.runChecked(inputs, checkInterrogateRunOptions(options, 'InterrogateEngine.run()'), 'InterrogateEngine.run()');
  }

  /** @internal run() on options already checked; `call` names the caller in messages. */
  runChecked(inputs: Iterable<ImageInput> | ImageList, options: InterrogateRunOptions, call: string): AsyncGenerator<InterrogatedImage, void, undefined> {
    this.checkOpen();
    if (options.caption !== undefined && !this.captioner) {
      throw new TypeError(`${call}: option "caption" cannot be given to an engine without a captioner (open it with captionModel)`);
    }
    return this.runResolved(toImageList(inputs, call), options);
  }

  private async *runResolved(images: ImageList, options: InterrogateRunOptions): AsyncGenerator<InterrogatedImage, void, undefined> {
    try {
      yield* this.interrogateAll(images, options);
    } catch (err) {
      // Closed during the run: say so, rather than what a closed session said.
      if (this.closed) this.checkOpen();
      throw err;
    }
  }

  private async *interrogateAll(images: ImageList, options: InterrogateRunOptions): AsyncGenerator<InterrogatedImage, void, undefined> {
    const mode = options.mode ?? 'fast';
    const modeOptions = {
      mode,
      score: options.score ?? true,
      ...(options.maxFlavors !== undefined ? { maxFlavors: options.maxFlavors } : {}),
      ...(options.shortlist !== undefined ? { shortlist: options.shortlist } : {}),
      ...(options.minFlavors !== undefined ? { minFlavors: options.minFlavors } : {}),
      ...(options.chainCache !== undefined ? { chainCache: options.chainCache } : {}),
    };
    // fast and classic rank a whole batch of images per pass over each bank; the chains of best and
    // negative run one image at a time, so each result is handed out as soon as its chain ends.
    const perCall = mode === 'fast' || mode === 'classic' ? Infinity : 1;
    const total = images.length;
    const dim = this.clip.dim;
    let done = 0;
    let encoded = 0;
    for await (const batch of this.clip.encodeBatches(images, { batchSize: options.batchSize ?? DEFAULT_IMAGE_BATCH, allowSvg: options.allowSvg, exif: options.exif })) {
      this.checkOpen();
      encoded += batch.count;
      options.onProgress?.(encoded, total, 'encoding images');
      // The batch's inputs, read again from the list (a list file holds no input in memory).
      const inputs = await images.slice(batch.start, batch.start + batch.count);
      const failureOf = new Map(batch.failures.map((f) => [f.index, f.reason]));
      const rowOf = new Map(batch.loaded.map((position, row) => [position, row]));
      const captions = this.captioner
        ? await captionBatch(this.captioner, batch.loaded.map((position) => loaderInput(inputs[position - batch.start]!)), { caption: options.caption, allowSvg: options.allowSvg, exif: options.exif })
        : undefined;
      let pending: Awaited<ReturnType<Interrogator['interrogate']>> = [];
      let pendingFrom = 0;
      for (let index = batch.start; index < batch.start + batch.count; index++) {
        const input = inputs[index - batch.start]!;
        const base = { index, id: input.id, file: input.label, mode };
        const failure = failureOf.get(index);
        if (failure !== undefined) {
          yield { ...base, prompt: null, similarity: NaN, labels: [], failure };
        } else {
          const row = rowOf.get(index)!;
          if (row - pendingFrom >= pending.length) {
            const rows = Math.min(perCall, batch.loaded.length - row);
            const caption = captions?.slice(row, row + rows);
            pending = await this.interrogator.interrogate(batch.embeds.subarray(row * dim, (row + rows) * dim), rows, { ...modeOptions, ...(caption ? { caption } : {}) });
            pendingFrom = row;
          }
          const r = pending[row - pendingFrom]!;
          const caption = captions?.[row];
          yield { ...base, ...(caption !== undefined ? { caption } : {}), prompt: r.prompt, similarity: r.similarity, labels: r.labels, ...(r.picked ? { picked: r.picked } : {}) };
        }
        options.onProgress?.(++done, total, 'interrogating');
      }
    }
  }

  protected release(): void {
    this.captioner?.close();
    this.interrogator.close();
    this.clip.close();
  }
}

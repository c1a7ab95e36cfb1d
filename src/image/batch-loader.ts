import os from 'node:os';
import { Img2PromptError } from '../util/errors.js';
import { decodeImage, EXIF_MODES, type DecodeOptions, type ExifMode } from './decode.js';
import type { FormatOptions } from './image-formats.js';
import { imageIdOf } from './image-id.js';
import { bytesLabel, type ImageInput } from './image-input.js';
import { isImageList, loaderInput, type ImageList } from './image-list.js';
import { readOptions } from '../util/options.js';
import { threadpoolSizeVariable } from '../config.js';
import { ClipTransform, type ClipImageProcessor, type PillowPassOrder } from './clip-transform.js';

export interface BatchLoaderOptions extends FormatOptions {
  batchSize: number;
  /** CLIP input resolution (224, 336, ...). */
  size: number;
  /** Defaults: OpenAI CLIP's mean and std. */
  mean?: ArrayLike<number>;
  std?: ArrayLike<number>;
  /** Images decoded and preprocessed at once; default: defaultDecodeConcurrency(). */
  concurrency?: number;
  /** Per-image pixel limit, see decodeImage. */
  maxPixels?: number;
  /** Whose preprocessing to reproduce; default 'open_clip'. */
  processor?: ClipImageProcessor;
  passOrder?: PillowPassOrder;
  /** EXIF orientation: 'apply' (default) or 'ignore' (as the Python pipelines), see decodeImage. */
  exif?: ExifMode;
}

export interface ImageFailure {
  /** The path, or `<id>` for bytes. */
  file: string;
  reason: string;
}

/** A failure of loadBatches, with the image's position in the list it was given. */
export interface BatchFailure extends ImageFailure {
  index: number;
}

export interface ImageBatch {
  /**
   * [b, 3, size, size] float32, b = ids.length (the images that loaded, in input order). A view of one
   * of the loader's two buffers, overwritten once the caller asks for the next batch: use it (run the
   * model on it) inside the loop body, or copy it.
   */
  pixels: Float32Array;
  /** Image ids: file names without directory and extension, or the ids given with bytes. */
  ids: string[];
  /** Paths (`<id>` for bytes) of the images that loaded. */
  files: string[];
  /** Positions, in the list given to loadBatches, of the images that loaded (row i is image loaded[i]). */
  loaded: number[];
  /** Images of this batch that could not be loaded; the batch goes on without them. */
  failures: BatchFailure[];
}

/**
 * Decodes in flight when the caller does not say: one per core, as far as libuv's pool allows, since each
 * decode holds one pool thread (shared with ORT runs and file reads). The CLI sizes the pool to the cores
 * plus four (cli/threadpool.cts), so there it is the core count; in a library process with libuv's
 * default pool of 4, at most 4.
 */
export function defaultDecodeConcurrency(): number {
  return Math.max(1, Math.min(os.availableParallelism(), threadpoolSizeVariable()));
}

/**
 * Images per batch when the caller does not say: the CLIP image encoders, predict, interrogate and the
 * CLI's --batch-size all start from this one number: enough images per call to keep a CPU's cores
 * busy, few enough that the two pixel buffers (about 10 MB each at 224 px) stay small.
 */
export const DEFAULT_IMAGE_BATCH = 16;

/**
 * Decodes and CLIP-preprocesses `files` in batches. While the caller works on batch k, batch k+1 is
 * decoded into the other of two float buffers allocated once up front, so at most two batches of pixels
 * exist at once (plus the `concurrency` decoded images in flight). Unreadable images are reported in
 * `failures`, not thrown.
 */
export async function* loadBatches(files: readonly ImageInput[] | ImageList, options: BatchLoaderOptions): AsyncGenerator<ImageBatch, void, undefined> {
  const o = readOptions(options, 'loadBatches()');
  const batchSize = o.required('batchSize', o.int('batchSize', { min: 1 }), 'a positive integer');
  const concurrency = o.int('concurrency', { min: 1 }) ?? defaultDecodeConcurrency();
  // Checked here, not per image: a bad limit is the caller's bug, not one more unreadable image.
  const maxPixels = o.int('maxPixels', { min: 1 });
  const exif = o.oneOf('exif', EXIF_MODES) ?? 'apply';
  const allowSvg = o.bool('allowSvg');
  // The transform checks its own settings.
  const transformOptions = {
    size: o.any<number>('size')!, mean: o.any<ArrayLike<number>>('mean'), std: o.any<ArrayLike<number>>('std'),
    processor: o.any<ClipImageProcessor>('processor'), passOrder: o.any<PillowPassOrder>('passOrder'),
  };
  o.done();
  const transform = new ClipTransform(transformOptions);
  const decode = { maxPixels, exif, alpha: 'keep', allowSvg } as const;
  if (files.length === 0) return;

  const batches = Math.ceil(files.length / batchSize);
  const slotsPerBuffer = Math.min(batchSize, files.length);
  const buffers = [new Float32Array(slotsPerBuffer * transform.floatsPerImage)];
  if (batches > 1) buffers.push(new Float32Array(slotsPerBuffer * transform.floatsPerImage));

  // A list file is read a batch at a time, as the batch is decoded.
  const take = isImageList(files)
    ? async (start: number, end: number) => (await files.slice(start, end)).map(loaderInput)
    : async (start: number, end: number) => files.slice(start, end);
  const fill = (k: number) => {
    const batch = take(k * batchSize, (k + 1) * batchSize).then((inputs) => fillBatch(inputs, k * batchSize, buffers[k % buffers.length]!, transform, concurrency, decode));
    // It may fail while the caller is still busy with the previous batch: mark it handled now (so Node
    // does not abort on an unhandled rejection); awaiting it below still throws.
    batch.catch(() => {});
    return batch;
  };

  // If the caller stops early, the batch in flight still finishes into its buffer, unobserved.
  let pending: Promise<ImageBatch> | undefined = fill(0);
  for (let k = 0; k < batches; k++) {
    const batch: ImageBatch = await pending!;
    // Start the next batch now, into the buffer the caller handed back by asking for this one.
    pending = k + 1 < batches ? fill(k + 1) : undefined;
    yield batch;
  }
}

async function fillBatch(
  inputs: ImageInput[], offset: number, buffer: Float32Array, transform: ClipTransform, concurrency: number, decode: DecodeOptions,
): Promise<ImageBatch> {
  const per = transform.floatsPerImage;
  const files = inputs.map((x) => (typeof x === 'string' ? x : bytesLabel(x.id)));
  const reasons: (string | undefined)[] = new Array(files.length);
  let next = 0;
  const worker = async () => {
    while (next < files.length) {
      const i = next++;
      try {
        // Alpha kept: the transform decides what transparency means for its processor.
        const input = inputs[i]!;
        const image = await decodeImage(typeof input === 'string' ? input : input.data, decode);
        await transform.into(image, buffer, i);
      } catch (err) {
        // A bad image is the caller's data problem; anything else (no addon, a bug) stops the run.
        if (!(err instanceof Img2PromptError)) throw err;
        // Never an empty reason: every failure is listed as `<file>: <reason>`.
        reasons[i] = err.reason.trim() || 'could not be read (no reason given)';
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, files.length) }, worker));

  // Close the gaps failures left, so the loaded images sit in slots 0..b-1 in input order.
  const ids: string[] = [];
  const loadedFiles: string[] = [];
  const loaded: number[] = [];
  const failures: BatchFailure[] = [];
  files.forEach((file, i) => {
    const reason = reasons[i];
    if (reason !== undefined) {
      failures.push({ file, reason, index: offset + i });
      return;
    }
    if (loaded.length !== i) buffer.copyWithin(loaded.length * per, i * per, (i + 1) * per);
    loadedFiles.push(file);
    loaded.push(offset + i);
    const input = inputs[i]!;
    ids.push(typeof input === 'string' ? imageIdOf(input) : input.id);
  });
  return { pixels: buffer.subarray(0, loaded.length * per), ids, files: loadedFiles, loaded, failures };
}

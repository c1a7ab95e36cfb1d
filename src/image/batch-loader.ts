import os from 'node:os';
import { Img2PromptError } from '../util/errors.js';
import { decodeImage, EXIF_MODES, type DecodeOptions, type ExifMode } from './decode.js';
import type { FormatOptions } from './image-formats.js';
import { imageIdOf } from './image-id.js';
import { ClipTransform, type ClipImageProcessor, type PillowPassOrder } from './clip-transform.js';

export interface BatchLoaderOptions extends FormatOptions {
  batchSize: number;
  /** CLIP input resolution (224, 336, ...). */
  size: number;
  /** Defaults: OpenAI CLIP's mean and std. */
  mean?: ArrayLike<number>;
  std?: ArrayLike<number>;
  /**
   * Images decoded and preprocessed at once. Each one holds a libuv pool thread (4 by default, shared
   * with ONNX Runtime runs and file I/O), so the default leaves room: min(4, cores).
   */
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
  file: string;
  reason: string;
}

export interface ImageBatch {
  /**
   * [b, 3, size, size] float32, b = ids.length (the images that loaded, in input order). A view of one
   * of the loader's two buffers, overwritten once the caller asks for the next batch: use it (run the
   * model on it) inside the loop body, or copy it.
   */
  pixels: Float32Array;
  /** Image ids: file names without directory and extension. */
  ids: string[];
  files: string[];
  /** Images of this batch that could not be loaded; the batch goes on without them. */
  failures: ImageFailure[];
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
export async function* loadBatches(files: readonly string[], options: BatchLoaderOptions): AsyncGenerator<ImageBatch, void, undefined> {
  const { batchSize } = options;
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw new TypeError(`Expected a positive integer for batchSize but received ${String(batchSize)}`);
  const concurrency = options.concurrency ?? Math.max(1, Math.min(4, os.availableParallelism()));
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
    throw new TypeError(`Expected a positive integer for concurrency but received ${String(concurrency)}`);
  }
  const { maxPixels } = options;
  if (maxPixels !== undefined && (!Number.isSafeInteger(maxPixels) || maxPixels < 1)) {
    // Checked here, not per image: a bad limit is the caller's bug, not one more unreadable image.
    throw new TypeError(`Expected a positive integer for maxPixels but received ${String(maxPixels)}`);
  }
  const exif = options.exif ?? 'apply';
  if (!EXIF_MODES.includes(exif)) throw new TypeError(`Expected 'apply' or 'ignore' for exif but received ${String(exif)}`);
  const transform = new ClipTransform({
    size: options.size, mean: options.mean, std: options.std, processor: options.processor, passOrder: options.passOrder,
  });
  const decode = { maxPixels, exif, alpha: 'keep', allowSvg: options.allowSvg } as const;
  if (files.length === 0) return;

  const batches = Math.ceil(files.length / batchSize);
  const slotsPerBuffer = Math.min(batchSize, files.length);
  const buffers = [new Float32Array(slotsPerBuffer * transform.floatsPerImage)];
  if (batches > 1) buffers.push(new Float32Array(slotsPerBuffer * transform.floatsPerImage));

  const fill = (k: number) => {
    const batch = fillBatch(files.slice(k * batchSize, (k + 1) * batchSize), buffers[k % buffers.length], transform, concurrency, decode);
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
  files: string[], buffer: Float32Array, transform: ClipTransform, concurrency: number, decode: DecodeOptions,
): Promise<ImageBatch> {
  const per = transform.floatsPerImage;
  const reasons: (string | undefined)[] = new Array(files.length);
  let next = 0;
  const worker = async () => {
    while (next < files.length) {
      const i = next++;
      try {
        // Alpha kept: the transform decides what transparency means for its processor.
        const image = await decodeImage(files[i], decode);
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
  const loaded: string[] = [];
  const failures: ImageFailure[] = [];
  files.forEach((file, i) => {
    const reason = reasons[i];
    if (reason !== undefined) {
      failures.push({ file, reason });
      return;
    }
    if (loaded.length !== i) buffer.copyWithin(loaded.length * per, i * per, (i + 1) * per);
    loaded.push(file);
    ids.push(imageIdOf(file));
  });
  return { pixels: buffer.subarray(0, loaded.length * per), ids, files: loaded, failures };
}

import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { Img2PromptError } from '../../util/errors.js';
import { commandImages } from '../input-images.js';
import {
  addEngineOptions, addImageSourceOptions, engineOptionsFrom, imageBatchSize, parsePositiveInt, parseNonNegative, urlFetchOptionsFrom,
  type EngineCliOptions, type ImageSourceCliOptions,
} from '../options.js';
import { DEFAULT_GAP_IMAGES } from '../../predict/predict.js';
import { DEFAULT_ATTEMPTS, DEFAULT_BACKOFF_MS } from '../../queue/chunk-queue.js';
import { localModelIdentities } from '../../queue/model-identity.js';
import { connectRedis } from '../../queue/redis-connection.js';
import { checkRunName } from '../../queue/run-keys.js';
import { DEFAULT_CHUNK_SIZE, pushRun } from '../../queue/run-push.js';
import { absoluteInputs, storedEngineOptions, type StoredEngineOptions } from '../../queue/run-spec.js';
import { addRedisRunOptions, CONNECT_TIMEOUT_MS } from './queue.js';

interface PushCliOptions extends EngineCliOptions, ImageSourceCliOptions {
  redis: string;
  run: string;
  chunkSize?: string;
  attempts?: string;
  backoff?: string;
}

/** The flags that say what a worker opens (the rest of the command line is about this push). */
function engineFlags(opts: PushCliOptions): StoredEngineOptions {
  const { model, members, member, weights, allowModelMismatch, promptsBank, dtype, labelsDir, labels, map, lambda, mode, k, temperature, captionModel, imageProcessor } = opts;
  return { model, members, member, weights, allowModelMismatch, promptsBank, dtype, labelsDir, labels, map, lambda, mode, k, temperature, captionModel, imageProcessor };
}

/**
 * Images per chunk: whole batches of the single run. A result's bits depend on the batch its image is
 * encoded in (the vision tower's batched kernels), so a chunk must hold exactly batches k..k+n of the
 * single run for its images to get that run's bytes.
 */
function chunkSizeFor(text: string | undefined, batchSize: number): number {
  const given = parsePositiveInt('--chunk-size', text);
  if (given === undefined) return Math.ceil(DEFAULT_CHUNK_SIZE / batchSize) * batchSize;
  if (given % batchSize !== 0) {
    const lower = Math.max(batchSize, given - (given % batchSize));
    throw new Img2PromptError(undefined, `--chunk-size must be a multiple of --batch-size (${batchSize}), so each chunk is whole batches of the run and gets its exact results: got ${given}; try ${lower}`);
  }
  return given;
}

export function register(queue: Command, cli: CliContext): void {
  const push = addImageSourceOptions(addEngineOptions(addRedisRunOptions(
    queue
      .command('push')
      .description('Record a run (its models and options: the same flags as predict) and queue its images in chunks for `img2prompt worker`')
      .argument('[inputs...]', 'image files, folders and/or http(s) URLs; workers read the files by the same absolute path (shared storage) or fetch the URLs')
      .option('--chunk-size <n>', `images per job, a multiple of --batch-size (default ${DEFAULT_CHUNK_SIZE}, rounded up to one)`)
      .option('--attempts <n>', `tries per chunk before it lands in the failed list (default ${DEFAULT_ATTEMPTS})`)
      .option('--backoff <s>', `seconds before a failed chunk's first retry, doubled for each later one (default ${DEFAULT_BACKOFF_MS / 1000})`)
      .option('--weights <file>', 'ensemble weights from fit-weights [default: equal weights]')
      .option('--allow-model-mismatch', 'use weights fitted for other models (warns instead of refusing)'),
  )));
  push.action(async (inputs: string[], opts: PushCliOptions) => {
    const name = checkRunName(opts.run);
    const batchSize = imageBatchSize(opts);
    const images = await commandImages(inputs, opts, { shardBlock: batchSize });
    const gapImages = parsePositiveInt('--gap-images', opts.gapImages);
    const chunkSize = chunkSizeFor(opts.chunkSize, batchSize);
    const attempts = parsePositiveInt('--attempts', opts.attempts) ?? DEFAULT_ATTEMPTS;
    const backoffSeconds = parseNonNegative('--backoff', opts.backoff);
    const fetch = urlFetchOptionsFrom(opts);
    // Bad engine flags (--k x, --members y) are refused here, not by every worker.
    engineOptionsFrom(opts, cli);
    const engine = storedEngineOptions(engineFlags(opts));
    const models = await localModelIdentities(engine, true);
    const redis = await connectRedis(opts.redis, { connectTimeoutMs: CONNECT_TIMEOUT_MS });
    try {
      const { spec, existed } = await pushRun(redis, {
        name,
        ids: images.ids,
        files: absoluteInputs(images.files),
        unsharded: images.unsharded && { ids: images.unsharded.ids, files: absoluteInputs(images.unsharded.files) },
        skipped: images.skipped,
        chunkSize,
        engine,
        run: { batchSize, ...(gapImages !== undefined ? { gapImages } : {}), exif: opts.exif, allowSvg: opts.allowSvg ?? false },
        fetch,
        models,
        attempts,
        backoffMs: backoffSeconds === undefined ? DEFAULT_BACKOFF_MS : Math.round(backoffSeconds * 1000),
      }, gapImages ?? DEFAULT_GAP_IMAGES);
      const unknown = models.filter((m) => m.identity === null).map((m) => `${m.role} "${m.name}"`);
      if (unknown.length > 0) cli.err(`note: ${unknown.join(', ')} not installed here: the first worker's copy pins the run\n`);
      const verb = existed ? 'was pushed already; queued its missing chunks' : 'pushed';
      cli.err(`run ${name} ${verb}: ${spec.images} images in ${spec.chunks} chunks of ${spec.chunkSize}; start workers with: img2prompt worker --redis <the same URL> --run ${name}\n`);
    } finally {
      redis.disconnect();
    }
  });
}

/**
 * A distributed run's description, written once by `queue push` and read by every worker, `status` and
 * `collect`: the models and options (the same flags as `predict`, with every file they name made
 * absolute, since workers start elsewhere), the models' identities, the modality-gap sample, the
 * chunking and the inputs that were skipped while listing. Workers take the run's settings from here,
 * never from their own command line, so every chunk is computed alike.
 */
import path from 'node:path';
import type { ImageFailure } from '../image/batch-loader.js';
import type { UrlFetchOptions } from '../image/url-fetch.js';
import type { ExifMode } from '../image/decode.js';
import type { EngineCliOptions } from '../cli/options.js';
import { sha256Bytes } from '../models/sha256.js';
import { Img2PromptError } from '../util/errors.js';
import type { ModelIdentity } from './model-identity.js';
import type { RedisClient } from './redis-connection.js';
import { runKeys } from './run-keys.js';

export const RUN_SPEC_VERSION = 1;

/** The engine flags of a run, as predict's CLI reads them (EngineCliOptions without the run-only ones). */
export type StoredEngineOptions = Omit<EngineCliOptions, 'exif' | 'allowSvg' | 'batchSize' | 'gapImages'> & { weights?: string; allowModelMismatch?: boolean };

export interface RunSpec {
  formatVersion: typeof RUN_SPEC_VERSION;
  name: string;
  pushedAt: string;
  /** Images of the run (the ids list holds them in input order) and how they were cut into chunks. */
  images: number;
  chunkSize: number;
  chunks: number;
  /** sha256 of the ids and inputs: a second push of the same run is accepted, one of other inputs refused. */
  inputsDigest: string;
  engine: StoredEngineOptions;
  run: { batchSize: number; gapImages?: number; exif: ExifMode; allowSvg: boolean };
  fetch: UrlFetchOptions;
  /**
   * The images a single `predict` of these inputs samples for the modality gap (its first batches):
   * each chunk is run after them, so every worker estimates the very same gap (as `--shard` does).
   */
  gapSample: { files: string[]; ids: string[] };
  models: ModelIdentity[];
  /** Inputs named like images that are not image files: never read; collect lists them. */
  skipped: ImageFailure[];
}

/** A chunk of the run: BullMQ job data. */
export interface ChunkJob {
  run: string;
  /** 0-based position of the chunk in the run. */
  chunk: number;
  ids: string[];
  /** Absolute paths or URLs, paired with ids. */
  files: string[];
}

/** `file` made absolute unless it is a URL. */
function absolute(file: string): string {
  return /^https?:\/\//i.test(file) ? file : path.resolve(file);
}

/** A model option that names a folder (it holds a separator or starts with a dot) made absolute; a cache name kept. */
function absoluteModel(nameOrDir: string | undefined): string | undefined {
  if (nameOrDir === undefined) return undefined;
  return nameOrDir.includes(path.sep) || nameOrDir.startsWith('.') ? path.resolve(nameOrDir) : nameOrDir;
}

/** The engine flags with every file they name absolute, so a worker in another folder reads the same files. */
export function storedEngineOptions(opts: StoredEngineOptions): StoredEngineOptions {
  const out: StoredEngineOptions = { ...opts };
  out.model = absoluteModel(opts.model)!;
  if (opts.captionModel !== undefined && opts.captionModel !== 'none') out.captionModel = absoluteModel(opts.captionModel)!;
  if (opts.weights !== undefined) out.weights = path.resolve(opts.weights);
  if (opts.map !== undefined) out.map = path.resolve(opts.map);
  if (opts.labelsDir !== undefined) out.labelsDir = path.resolve(opts.labelsDir);
  if (opts.promptsBank) out.promptsBank = opts.promptsBank.map((f) => path.resolve(f));
  if (opts.labels) out.labels = opts.labels.map((f) => path.resolve(f));
  if (opts.member) {
    out.member = opts.member.map((m) => {
      const at = m.indexOf('=');
      return at < 0 ? m : `${m.slice(0, at)}=${path.resolve(m.slice(at + 1))}`;
    });
  }
  // Only plain values travel: commander's option objects may carry functions or undefined fields.
  return JSON.parse(JSON.stringify(out)) as StoredEngineOptions;
}

/** Inputs made absolute (URLs kept). */
export function absoluteInputs(files: readonly string[]): string[] {
  return files.map(absolute);
}

export function inputsDigest(ids: readonly string[], files: readonly string[]): string {
  return sha256Bytes(JSON.stringify([ids, files]));
}

/** The run's spec, or a one-line error naming the run when there is none (or it is not ours). */
export async function readRunSpec(redis: RedisClient, name: string): Promise<RunSpec> {
  const text = await redis.get(runKeys(name).spec);
  if (text === null) throw new Img2PromptError(undefined, `no run "${name}" in this Redis (push it first with \`img2prompt queue push INPUTS... --run ${name}\`)`);
  let spec: RunSpec;
  try {
    spec = JSON.parse(text) as RunSpec;
  } catch {
    throw new Img2PromptError(undefined, `run "${name}": its description in Redis (${runKeys(name).spec}) is not JSON`, { code: 'FILE_INVALID' });
  }
  if (spec.formatVersion !== RUN_SPEC_VERSION) {
    throw new Img2PromptError(undefined, `run "${name}" was pushed by another img2prompt release (format ${JSON.stringify(spec.formatVersion)}, this one reads ${RUN_SPEC_VERSION}); push it again under a new name`, { code: 'FILE_INVALID' });
  }
  return spec;
}

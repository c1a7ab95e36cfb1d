import { Img2PromptError } from '../util/errors.js';
import { ClipModel, DEFAULT_CLIP_MODEL } from '../clip/model.js';
import { imageIdOf } from '../image/image-id.js';
import { EXIF_MODES, type ExifMode } from '../image/decode.js';
import type { ClipImageProcessor } from '../image/image-processor.js';
import { Interrogator } from './interrogator.js';
import type { CachedBank } from './bank-cache.js';
import { DEFAULT_BANK_DTYPE, type BankDtype, type ChosenLabel, type InterrogateMode, type InterrogationResult } from './types.js';

/**
 * The CLIP Interrogator over image files, as one call: open a CLIP model and its label banks (building
 * the bank caches when needed), encode the images, and compose one prompt per image with the chosen
 * mode. `img2prompt interrogate` is this plus a CSV writer.
 */

/** The model interrogate() opens by default: predict's. */
export const DEFAULT_INTERROGATE_MODEL = DEFAULT_CLIP_MODEL;

export interface InterrogatorSetupOptions {
  /** CLIP model in the cache (models pull/import/random) or a model folder; default DEFAULT_INTERROGATE_MODEL. */
  model?: string;
  /** Image preprocessing pipeline; default the one the checkpoint's layout implies (see ClipOpenOptions). */
  imageProcessor?: ClipImageProcessor;
  /** Folder with the built-in lists; default the shipped ../shared/assets/labels. */
  labelsDir?: string;
  /** Extra label lists: files (one label per line) or folders of .txt files, each one bank. */
  labels?: readonly string[];
  /** Storage of the cached bank matrices; default fp32. */
  dtype?: BankDtype;
  /** Told about every bank as it is loaded or built. */
  onBank?(bank: CachedBank): void;
  /** Told after each chunk of a bank being built is on disk. */
  onChunk?(rowsDone: number, count: number): void;
  /** Told as a bank is built, with the rows embedded so far (to draw progress from). */
  onBankProgress?(bank: string, rowsDone: number, count: number): void;
  /** Warnings (e.g. a model with random weights). */
  onNotice?(message: string): void;
}

/** An opened model with its interrogator; close() frees both. */
export interface InterrogatorSetup {
  model: ClipModel;
  interrogator: Interrogator;
  close(): void;
}

/** Opens the CLIP model and every label bank through the cache; banks rank on the GPU when the model runs on CUDA. */
export async function openInterrogatorSetup(options: InterrogatorSetupOptions = {}): Promise<InterrogatorSetup> {
  const model = await ClipModel.open(options.model ?? DEFAULT_INTERROGATE_MODEL, { imageProcessor: options.imageProcessor });
  try {
    if (model.random) options.onNotice?.(`warning: ${model.name} has RANDOM weights: its labels and prompts mean nothing`);
    const interrogator = await Interrogator.open(model, {
      labelsDir: options.labelsDir,
      extraLabels: options.labels,
      dtype: options.dtype ?? DEFAULT_BANK_DTYPE,
      rankProviders: [model.provider],
      onChunk: options.onChunk,
      onProgress: options.onBankProgress,
      onBank: options.onBank,
    });
    return {
      model,
      interrogator,
      close() {
        interrogator.close();
        model.close();
      },
    };
  } catch (err) {
    model.close();
    throw err;
  }
}

export type InterrogatePhase = 'encoding images' | 'interrogating';

export interface InterrogateRunOptions {
  /** Default 'fast'. */
  mode?: InterrogateMode;
  /** Images per vision-tower call; default 16. */
  batchSize?: number;
  /** Labels a mode may add (classic: flavors, default 3; fast/best/negative: default 32). */
  maxFlavors?: number;
  /** best/negative: labels shortlisted by image similarity before chaining; default 2048. */
  shortlist?: number;
  /** best/negative: steps the chain explores past a drop; default 8. */
  minFlavors?: number;
  /** Encode each finished prompt to report its similarity to the image; default true (false: similarity NaN, faster). */
  score?: boolean;
  /**
   * best/negative: run the prompt shared by a chain step's candidates once per step (default true);
   * false encodes every candidate in full, the slow reference path. Both choose the same labels.
   */
  chainCache?: boolean;
  /** Also decode SVG files (see image/image-formats.ts); default false: raster images only. */
  allowSvg?: boolean;
  /** EXIF orientation: 'apply' (default) or 'ignore', as the CLIP Interrogator does (see decodeImage). */
  exif?: ExifMode;
  /** Called as images are encoded, then as results are handed out (total: all images). */
  onProgress?(done: number, total: number, phase: InterrogatePhase): void;
}

export type InterrogateOptions = InterrogatorSetupOptions & InterrogateRunOptions & {
  /** An opened setup to use (and leave open) instead of opening one per call. */
  setup?: InterrogatorSetup;
};

export interface InterrogatedImage {
  /** Position in the input list. */
  index: number;
  /** File name without extension. */
  id: string;
  file: string;
  mode: InterrogateMode;
  /** The composed prompt; null for an image that could not be read. */
  prompt: string | null;
  /** Cosine similarity of the prompt's text embedding to the image; NaN when not scored or failed. */
  similarity: number;
  /** The labels in the prompt, in prompt order ([] for a failed image). */
  labels: ChosenLabel[];
  /** best: which candidate won. */
  picked?: InterrogationResult['picked'];
  /** Why the image could not be read. */
  failure?: string;
}

const MODES: readonly InterrogateMode[] = ['fast', 'classic', 'best', 'negative'];

function checkCount(name: string, value: number | undefined): void {
  if (value !== undefined && !(Number.isSafeInteger(value) && value >= 1)) {
    throw new Img2PromptError(undefined, `${name} must be a positive integer, got ${value}`);
  }
}

/**
 * Interrogates every image in `images` (file paths) and streams one result per image, in input order;
 * an image that cannot be read comes out with its `failure` and a null prompt, and the run goes on.
 * Opens the model and banks (or uses `options.setup`) and closes what it opened.
 *
 * @example
 * ```ts
 * import { interrogate, openInterrogatorSetup } from 'img2prompt';
 *
 * for await (const r of interrogate(['images/a.png'], { model: 'clip-vit-b-32', mode: 'best' })) {
 *   console.log(r.id, r.prompt, r.similarity, r.labels.map((l) => l.label));
 * }
 * // Several calls over one opened model and its label banks:
 * const setup = await openInterrogatorSetup({ model: 'clip-vit-b-32' });
 * try {
 *   for await (const r of interrogate(['images/b.png'], { setup, mode: 'fast' })) console.log(r.prompt ?? r.failure);
 * } finally {
 *   setup.close();
 * }
 * ```
 * @throws {Img2PromptError} before the first result, naming the file and the fix, when the model is not
 *   installed or a label list is unreadable; `TypeError`/`Img2PromptError` for an unknown mode or a bad count.
 */
export async function* interrogate(images: readonly string[], options: InterrogateOptions = {}): AsyncGenerator<InterrogatedImage, void, undefined> {
  const mode = options.mode ?? 'fast';
  if (!MODES.includes(mode)) throw new Img2PromptError(undefined, `unknown interrogation mode "${String(mode)}" (use ${MODES.join(', ')})`);
  checkCount('batchSize', options.batchSize);
  checkCount('maxFlavors', options.maxFlavors);
  checkCount('shortlist', options.shortlist);
  if (options.exif !== undefined && !EXIF_MODES.includes(options.exif)) {
    throw new Img2PromptError(undefined, `exif must be "apply" or "ignore", got ${JSON.stringify(options.exif)}`);
  }
  if (options.minFlavors !== undefined && !(Number.isSafeInteger(options.minFlavors) && options.minFlavors >= 0)) {
    throw new Img2PromptError(undefined, `minFlavors must be a non-negative integer, got ${options.minFlavors}`);
  }
  if (options.chainCache !== undefined && typeof options.chainCache !== 'boolean') {
    throw new TypeError(`Expected a boolean for chainCache but received ${String(options.chainCache)} of type ${typeof options.chainCache}`);
  }
  const setup = options.setup ?? (await openInterrogatorSetup(options));
  try {
    const { model, interrogator } = setup;
    const total = images.length;
    const encoded = await model.encodeImages(images, {
      batchSize: options.batchSize ?? 16,
      allowSvg: options.allowSvg,
      exif: options.exif,
      onProgress: (done) => options.onProgress?.(done, total, 'encoding images'),
    });
    const failureOf = new Map(encoded.failures.map((f) => [f.file, f.reason]));
    // encodeImages keeps input order, so the readable inputs take the embedding rows one after another.
    let readableSoFar = 0;
    const rowOf = images.map((f) => (failureOf.has(f) ? -1 : readableSoFar++));
    if (readableSoFar !== encoded.files.length || rowOf.some((r, i) => r >= 0 && encoded.files[r] !== images[i])) {
      throw new Img2PromptError(undefined, 'internal error: encoded images do not line up with the inputs');
    }
    const modeOptions = {
      mode,
      score: options.score ?? true,
      ...(options.maxFlavors !== undefined ? { maxFlavors: options.maxFlavors } : {}),
      ...(options.shortlist !== undefined ? { shortlist: options.shortlist } : {}),
      ...(options.minFlavors !== undefined ? { minFlavors: options.minFlavors } : {}),
      ...(options.chainCache !== undefined ? { chainCache: options.chainCache } : {}),
    };
    // fast and classic rank a batch of images per pass over each bank; the chains run one image at a time anyway.
    const step = mode === 'fast' || mode === 'classic' ? 16 : 1;
    const dim = model.dim;
    let done = 0;
    for (let start = 0; start < total; ) {
      // The next run of inputs: up to `step` readable images, plus the failures among them.
      let end = start;
      for (let readable = 0; end < total && readable < step; end++) if (rowOf[end]! >= 0) readable++;
      const rows = rowOf.slice(start, end).filter((r) => r >= 0);
      const results =
        rows.length === 0 ? [] : await interrogator.interrogate(encoded.embeds.subarray(rows[0]! * dim, (rows.at(-1)! + 1) * dim), rows.length, modeOptions);
      let next = 0;
      for (let index = start; index < end; index++) {
        const file = images[index]!;
        const base = { index, id: imageIdOf(file), file, mode };
        const failure = rowOf[index]! < 0 ? failureOf.get(file)! : undefined;
        if (failure !== undefined) {
          yield { ...base, prompt: null, similarity: NaN, labels: [], failure };
        } else {
          const r = results[next++]!;
          yield { ...base, prompt: r.prompt, similarity: r.similarity, labels: r.labels, ...(r.picked ? { picked: r.picked } : {}) };
        }
        options.onProgress?.(++done, total, 'interrogating');
      }
      start = end;
    }
  } finally {
    if (!options.setup) setup.close();
  }
}

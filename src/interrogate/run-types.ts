/**
 * The options and results of the interrogate engine (engine.ts): the engine options say what to open
 * (model, label banks), the run options how to interrogate one list of images.
 */
import type { ExifMode } from '../image/decode.js';
import type { ClipImageProcessor } from '../image/image-processor.js';
import type { CachedBank } from './bank-cache.js';
import type { CaptionOptions } from '../caption/captioner.js';
import type { BankDtype, ChosenLabel, InterrogateMode, InterrogationResult } from './types.js';

export interface InterrogateEngineOptions {
  /** CLIP model in the cache (models pull/import/random) or a model folder; default DEFAULT_CLIP_MODEL (clip-vit-b-32), predict's. */
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
  /** Cancels the open (bank builds take minutes); finished bank chunks stay cached. */
  signal?: AbortSignal;
  /**
   * A captioner (BLIP or GIT, installed or a folder) whose caption heads every prompt, as in the CLIP
   * Interrogator. Default none: prompts are label-bank phrases only.
   */
  captionModel?: string;
}

export type InterrogatePhase = 'encoding images' | 'interrogating';

export interface InterrogateRunOptions {
  /** Default 'fast'. */
  mode?: InterrogateMode;
  /** Images per vision-tower call (and results handed out per encode); default DEFAULT_IMAGE_BATCH (16). */
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
  /**
   * Caption generation (with a captionModel): default the CLIP Interrogator's, 8 beams, at most 32
   * tokens, at least 5, no prefix.
   */
  caption?: CaptionOptions;
  /** Called as images are encoded, then as results are handed out (total: all images). */
  onProgress?(done: number, total: number, phase: InterrogatePhase): void;
}

export interface InterrogatedImage {
  /** Position in the input list. */
  index: number;
  /** File name without extension, or the id given with bytes. */
  id: string;
  /** The path, or `<id>` for bytes. */
  file: string;
  mode: InterrogateMode;
  /** The caption that heads the prompt (with a captionModel); absent otherwise. */
  caption?: string;
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

/**
 * The options and results of the predict engine (engine.ts opens it, run.ts runs it). The engine
 * options say what to open (models, banks, map, weights); the run options say how to go through one
 * list of images (batching, resume files, decoding).
 */
import { DEFAULT_IMAGE_BATCH } from '../image/batch-loader.js';
import type { ExifMode } from '../image/decode.js';
import type { ClipImageProcessor } from '../image/image-processor.js';
import type { BankDtype, InterrogateMode } from '../interrogate/types.js';
import type { EnsembleWeights } from './ensemble.js';
import type { CaptionOptions } from '../caption/captioner.js';
import type { EnsembleMemberName } from './members.js';
import type { OnnxMemberSpec } from './onnx-member.js';
import type { HeadMemberSpec } from './head-file.js';

/** Images per CLIP batch (and per checkpoint append). */
export const DEFAULT_BATCH_SIZE = DEFAULT_IMAGE_BATCH;
/** Images whose CLIP centre, against the bank's text centre, gives the modality gap for the map member. */
export const DEFAULT_GAP_IMAGES = 512;

export interface PredictEngineOptions {
  /** CLIP model name in the cache, or a model folder; default clip-vit-b-32. */
  model?: string;
  /**
   * Members to compute; default: those the weights name, else knn, map and interrogator (and the
   * captioner with a captionModel, and every ONNX member given). An ONNX member is `onnx:NAME`.
   */
  members?: readonly EnsembleMemberName[];
  /**
   * ONNX models image → 384-d prompt vector that join the ensemble as members `onnx:NAME`, each with
   * its preprocessing described beside it (`vit.onnx` → `vit.json`) or in its metadata (see
   * image/preprocessing-description.ts). Names: a letter, then letters, digits, _ and -; not a built-in member's.
   */
  onnxMembers?: readonly OnnxMemberSpec[];
  /**
   * Heads fitted with `fit-head` (head files) that join the ensemble as members `head:NAME`; each must
   * have been fitted with this run's CLIP model. Names as for onnxMembers.
   */
  heads?: readonly HeadMemberSpec[];
  /** Ensemble weights (a file or the object); default equal weights over the members. */
  weights?: string | EnsembleWeights;
  /** Accept weights fitted for other models (with a notice instead of an error). */
  allowModelMismatch?: boolean;
  /** Prompt corpus files for the bank; default the shipped corpus (defaultPromptCorpus). */
  promptsBank?: readonly string[];
  /** Storage of CLIP-side banks (prompt bank and label banks); default DEFAULT_BANK_DTYPE (fp32). */
  dtype?: BankDtype;
  /** Interrogator label lists (see LabelBankOptions). */
  labelsDir?: string;
  labels?: readonly string[];
  /** Linear-map file; default `<home>/maps/<clip model>/<bank>.json`, fitted and saved when missing. */
  map?: string;
  /** Ridge strength for a map fitted on the fly (default: selected on held-out prompts). */
  lambda?: number;
  /** Interrogator mode; default fast. */
  mode?: InterrogateMode;
  /** Image preprocessing pipeline; default the one the CLIP checkpoint's layout implies (see ClipOpenOptions). */
  imageProcessor?: ClipImageProcessor;
  /** kNN neighbours and softmax temperature (PromptBank defaults). */
  k?: number;
  temperature?: number;
  /** Warnings and one-line status messages (bank builds, map fits, random weights). */
  onNotice?(message: string): void;
  /** Told as a prompt or label bank is built, with the rows embedded so far (to draw progress from). */
  onBankProgress?(bank: string, rowsDone: number, count: number): void;
  /** Cancels the open (bank builds and map fits take minutes); finished bank chunks stay cached. */
  signal?: AbortSignal;
  /**
   * A captioner (BLIP or GIT, installed or a folder): its caption heads the interrogator member's
   * prompts and is embedded as the captioner member. Default none.
   */
  captionModel?: string;
  /** Caption generation with a captionModel; default the CLIP Interrogator's (8 beams, at most 32 tokens, at least 5). */
  caption?: CaptionOptions;
}

/**
 * What a run is doing when it reports progress: 'encoding images' while it encodes the sample the
 * modality gap is estimated from (only with the map member; nothing is handed out yet), then 'members'
 * while images are finished and handed out.
 */
export type PredictPhase = 'encoding images' | 'members';

export interface PredictRunOptions {
  /** Images per CLIP batch (and per checkpoint append); default 16. */
  batchSize?: number;
  /** Checkpoint file; none by default (the CLI uses `<output>.ckpt`). */
  checkpoint?: string;
  /** Continue from the checkpoint instead of starting over. */
  resume?: boolean;
  /**
   * Discard the resume files of an earlier run and start over. Without `resume` or `restart`, a run
   * whose checkpoint (or gap files) exists is refused rather than destroying the saved work.
   */
  restart?: boolean;
  /** Images sampled (from the start of the list) for the modality gap; default 512. */
  gapImages?: number;
  /**
   * The map member's modality gap as an earlier run over the same list estimated it (see
   * onModalityGap): the sample is then not encoded again. For running a long list in parts
   * (a distributed run's chunks); the gap's bytes join the checkpoint fingerprint.
   */
  modalityGap?: Float32Array;
  /** Told the gap the run uses, once it is known (null when the map member has none). */
  onModalityGap?(gap: Float32Array | null): void;
  /** Also decode SVG files (see image/image-formats.ts); default false: raster images only. */
  allowSvg?: boolean;
  /** EXIF orientation: 'apply' (default) or 'ignore', as the Python pipelines do (see decodeImage). */
  exif?: ExifMode;
  /**
   * Phase 'members': called after each image is handed out (total: all images). Phase 'encoding images':
   * called before and after each batch of the modality-gap sample (total: the sampled images).
   */
  onProgress?(done: number, total: number, phase: PredictPhase): void;
}

export interface PredictedImage {
  /** Position in the input list. */
  index: number;
  /** The file name without its extension, or the id given with bytes. */
  id: string;
  /** The path, or `<id>` for bytes. */
  file: string;
  /** [384] unit vector: the ensemble of the members, or the fallback vector. */
  vector: Float32Array;
  /** Interrogator prompt when that member is on, else the caption when there is one, else the nearest bank prompt; null for a failed image. */
  prompt: string | null;
  /** The image's caption, with a caption model (else, and for a failed image, null). */
  caption: string | null;
  /** The bank prompt nearest to the image in CLIP space and its cosine similarity, whatever the members; null for a failed image. */
  nearestPrompt: { text: string; similarity: number } | null;
  /** Each member's vector for this image (members that had nothing for it are left out). */
  members: Partial<Record<EnsembleMemberName, Float32Array>>;
  /** Why the image could not be read (it then has the fallback vector). */
  failure?: string;
  /** True when `vector` is the fallback vector. */
  fallback: boolean;
  /** True when the image came from the checkpoint, not computed in this run. */
  resumed: boolean;
}

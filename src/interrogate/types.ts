import type { Rows } from '../util/rows.js';
import type { BankRanker } from '../rank/bank-ranker.js';

/**
 * The small interfaces the CLIP Interrogator is written against, so label banks, the bank cache and
 * the interrogation modes can be tested with planted embeddings and later plugged into the real CLIP
 * text tower without changes.
 */

/** The text half of a CLIP model, as the interrogator needs it. */
export interface ClipTextSide {
  /** Names the model; label-bank caches are kept per model id. */
  readonly modelId: string;
  /** Identifies the exact weights (e.g. a sha256); a cache built with other weights is rebuilt. */
  readonly weightHash: string;
  /** Identifies how texts become token ids (tokenizer, cleaning); a cache built from other ids is rebuilt. */
  readonly tokenizerId: string;
  /** Embedding width. */
  readonly dim: number;
  /** Embeds texts: [texts.length, dim] row-major, each row L2-normalised. */
  encodeTexts(texts: string[], opts?: { onProgress?(done: number): void }): Promise<Float32Array>;
  /** CLIP tokens of `text`, including the start and end tokens. */
  countTokens(text: string): number;
  /**
   * Optional: countTokens(prefix + joiner + addition) given countTokens(prefix) = `prefixCount`, without
   * tokenizing the prefix again where the join cannot change its words (ClipTokenizer.countTokensJoined).
   */
  countTokensJoined?(prefix: string, prefixCount: number, joiner: string, addition: string): number;
  /**
   * Optional: embeds texts that mostly share their first words, reusing the shared part's work (a
   * causal text tower runs a common token prefix once). Same rows as encodeTexts to float rounding.
   */
  encodeTextsSharingPrefix?(texts: string[]): Promise<Float32Array>;
}

/** CLIP's context length: a prompt longer than this is truncated by the text tower. */
export const CLIP_MAX_TOKENS = 77;

/** Storage type of a cached bank matrix. fp16 (opt-in) halves disk and memory; ranking barely notices. */
export type BankDtype = 'fp32' | 'fp16';

/**
 * What every bank cache user (labels build, interrogate, predict, fit-map) stores by default: one
 * default, because they share the cache files and a mismatch would rebuild them back and forth.
 */
export const DEFAULT_BANK_DTYPE: BankDtype = 'fp32';

/** What part a bank plays in the prompt formats. */
export type BankRole = 'artist' | 'flavor' | 'medium' | 'movement' | 'trending' | 'negative' | 'extra';

/** A label bank before embedding: its labels in order, deduplicated. */
export interface LabelBankDef {
  /** Also the cache file name, so limited to [a-z0-9._-]. */
  name: string;
  role: BankRole;
  labels: string[];
  /** The file(s) the labels came from, for messages. */
  source: string;
}

/** A bank with its embeddings: row i of `matrix` embeds `labels[i]`. */
export interface EmbeddedBank extends LabelBankDef {
  dtype: BankDtype;
  /** [labels.length, dim] unit rows; float32 values, or float16 bits for dtype 'fp16'. */
  matrix: Rows<Float32Array | Uint16Array>;
  /** Ranks against `matrix` on a GPU (an ONNX MatMul+TopK session); absent: the native CPU kernel. */
  ranker?: BankRanker;
}

export type InterrogateMode = 'fast' | 'classic' | 'best' | 'negative';
export const INTERROGATE_MODES: readonly InterrogateMode[] = ['fast', 'classic', 'best', 'negative'];

/** One label a mode put into its prompt. */
export interface ChosenLabel {
  label: string;
  /** Name of the bank it came from. */
  bank: string;
  /** Cosine similarity of the label alone to the image. */
  score: number;
}

export interface InterrogationResult {
  mode: InterrogateMode;
  prompt: string;
  /** Cosine similarity of the whole prompt text to the image (as the text tower sees it); NaN when not scored. */
  similarity: number;
  /** The labels in the prompt, in prompt order (the caption is not a label). */
  labels: ChosenLabel[];
  /** 'best' only: which candidate won. */
  picked?: 'caption' | 'classic' | 'fast' | 'chain';
}

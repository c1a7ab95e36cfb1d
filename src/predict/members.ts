import { Img2PromptError } from '../util/errors.js';
import type { Interrogator } from '../interrogate/interrogator.js';
import type { InterrogateMode } from '../interrogate/types.js';
import type { TextEmbedder } from '../text/embedder.js';
import type { LinearMap } from './linear-map.js';
import type { NearestPrompt, PromptBank, PromptBankOptions } from './prompt-bank.js';
import type { EnsembleWeights } from './ensemble.js';

/**
 * The ensemble's members as functions of a batch of CLIP image embeddings: each returns one MiniLM
 * vector per image ([B, 384]; a zero row where it has nothing for an image) and, where it has one, a
 * readable prompt per image.
 *
 * - knn:          the prompt-bank member (softmax-weighted MiniLM vectors of the nearest prompts).
 * - map:          the ridge CLIP→MiniLM map, applied after moving the images by the modality gap.
 * - interrogator: the CLIP Interrogator's prompt, embedded by MiniLM.
 * - captioner:    a captioning model's caption, embedded by MiniLM. No captioner ships yet, so it is
 *                 always absent; weights that name it have their weight spread over the others.
 */

export const MEMBER_NAMES = ['knn', 'map', 'interrogator', 'captioner'] as const;
export type MemberName = (typeof MEMBER_NAMES)[number];
export const DEFAULT_MEMBERS: readonly MemberName[] = ['knn', 'map', 'interrogator'];
/** Members that have no implementation in this build. */
export const UNAVAILABLE_MEMBERS: ReadonlySet<MemberName> = new Set(['captioner']);

export interface MemberOutput {
  /** [B, textDim]. */
  vectors: Float32Array;
  /** A readable prompt per image, when the member produces text. */
  prompts?: (string | null)[];
  /** The nearest bank prompt per image with its CLIP similarity, when the member searched the bank. */
  nearest?: (NearestPrompt | null)[];
}

/** A member: image embeddings [rows, clipDim] (unit rows) → its predictions. */
export type Member = (imageEmbeds: Float32Array, rows: number) => Promise<MemberOutput>;

/** Parses a comma-separated member list ("knn,map"), refusing unknown names and repeats. */
export function parseMemberList(text: string, what = '--members'): MemberName[] {
  const names = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (names.length === 0) throw new Img2PromptError(undefined, `${what} names no members (choose from ${MEMBER_NAMES.join(', ')})`);
  const seen = new Set<string>();
  for (const n of names) {
    if (!(MEMBER_NAMES as readonly string[]).includes(n)) {
      throw new Img2PromptError(undefined, `${what}: unknown member "${n}" (choose from ${MEMBER_NAMES.join(', ')})`);
    }
    if (seen.has(n)) throw new Img2PromptError(undefined, `${what}: member "${n}" is listed twice`);
    seen.add(n);
  }
  return names as MemberName[];
}

/** The prompt-bank kNN member; its prompt is the nearest bank prompt. */
export function knnMember(bank: PromptBank, options: PromptBankOptions = {}): Member {
  return async (embeds) => {
    const r = await bank.predict(embeds, options);
    return { vectors: r.vectors, prompts: r.nearest.map((n) => n?.text ?? null), nearest: r.nearest };
  };
}

/** The linear-map member over gap-corrected images (`gap`: mean image − mean text in CLIP space). */
export function mapMember(map: LinearMap, gap: Float32Array): Member {
  return async (embeds) => ({ vectors: map.apply(embeds, { gap }) });
}

export interface InterrogatorMemberOptions {
  mode?: InterrogateMode;
  /** Labels a mode may add (see InterrogateOptions.maxFlavors). */
  maxFlavors?: number;
}

/** The interrogator member: interrogate (default mode fast), then embed each prompt with MiniLM. */
export function interrogatorMember(interrogator: Interrogator, minilm: TextEmbedder, options: InterrogatorMemberOptions = {}): Member {
  const mode = options.mode ?? 'fast';
  return async (embeds, rows) => {
    // Only the prompt text is used, so fast and classic skip scoring it with the text tower.
    const results = await interrogator.interrogate(embeds, rows, { mode, score: false, ...(options.maxFlavors ? { maxFlavors: options.maxFlavors } : {}) });
    const prompts = results.map((r) => r.prompt);
    const vectors = await minilm.embed(prompts);
    if (vectors.length !== rows * minilm.dim) {
      throw new Img2PromptError(undefined, `MiniLM returned ${vectors.length} values for ${rows} prompts of dimension ${minilm.dim}`);
    }
    return { vectors, prompts };
  };
}

/** Members to compute: the asked-for ones (default: the weighted ones, else the defaults) that exist and carry weight. */
export function chooseMembers(
  asked: readonly MemberName[] | undefined,
  weights: EnsembleWeights | undefined,
  weightsName: string,
  notice: (message: string) => void,
): MemberName[] {
  const weighted = weights ? Object.keys(weights.members).filter((n) => weights.members[n]! > 0) : undefined;
  const wanted = asked ?? (weighted as MemberName[] | undefined) ?? [...DEFAULT_MEMBERS];
  const out: MemberName[] = [];
  for (const name of wanted) {
    if (UNAVAILABLE_MEMBERS.has(name)) {
      notice(`member ${name} is not available in this build; it is absent from the ensemble`);
    } else if (!(DEFAULT_MEMBERS as readonly string[]).includes(name)) {
      notice(`warning: ${weightsName} names member "${name}", which this version does not know; it is absent`);
    } else if (weighted && !weighted.includes(name)) {
      notice(`member ${name} has no weight in ${weightsName}; it is not computed`);
    } else {
      out.push(name);
    }
  }
  if (out.length === 0) {
    throw new Img2PromptError(weights ? weightsName : undefined, `none of the members ${wanted.join(', ')} can be computed (available: ${DEFAULT_MEMBERS.join(', ')})`);
  }
  return out;
}

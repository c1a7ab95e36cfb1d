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
 * - captioner:    a captioning model's caption (BLIP, GIT), embedded by MiniLM. Only with a caption
 *                 model (captionModel / --caption-model); without one it is absent and weights that
 *                 name it have their weight spread over the others.
 */

export const MEMBER_NAMES = ['knn', 'map', 'interrogator', 'captioner'] as const;
export type MemberName = (typeof MEMBER_NAMES)[number];
/** The members computed by default without a caption model; with one, the captioner joins them. */
export const DEFAULT_MEMBERS: readonly MemberName[] = ['knn', 'map', 'interrogator'];

export interface MemberOutput {
  /** [B, textDim]. */
  vectors: Float32Array;
  /** A readable prompt per image, when the member produces text. */
  prompts?: (string | null)[];
  /** The nearest bank prompt per image with its CLIP similarity, when the member searched the bank. */
  nearest?: (NearestPrompt | null)[];
}

/** What a member may use of a batch besides the CLIP embeddings. */
export interface MemberBatch {
  /** The caption of each row (undefined where the captioner could not read the image), with a caption model. */
  captions?: readonly (string | undefined)[];
}

/** A member: image embeddings [rows, clipDim] (unit rows) → its predictions. */
export type Member = (imageEmbeds: Float32Array, rows: number, batch: MemberBatch) => Promise<MemberOutput>;

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
  return async (embeds, rows, batch) => {
    // Only the prompt text is used, so fast and classic skip scoring it with the text tower.
    const results = await interrogator.interrogate(embeds, rows, {
      mode,
      score: false,
      ...(options.maxFlavors ? { maxFlavors: options.maxFlavors } : {}),
      ...(batch.captions ? { caption: batch.captions } : {}),
    });
    const prompts = results.map((r) => r.prompt);
    const vectors = await minilm.embed(prompts);
    if (vectors.length !== rows * minilm.dim) {
      throw new Img2PromptError(undefined, `MiniLM returned ${vectors.length} values for ${rows} prompts of dimension ${minilm.dim}`);
    }
    return { vectors, prompts };
  };
}

/** The captioner member: each image's caption embedded by MiniLM (a zero row where there is none). */
export function captionerMember(minilm: TextEmbedder): Member {
  return async (_embeds, rows, batch) => {
    const captions = batch.captions;
    if (!captions || captions.length !== rows) throw new Error(`internal: the captioner member got ${captions?.length ?? 'no'} captions for ${rows} images`);
    const present = captions.flatMap((c, r) => (c !== undefined && c.trim() !== '' ? [r] : []));
    const vectors = new Float32Array(rows * minilm.dim);
    if (present.length > 0) {
      const embedded = await minilm.embed(present.map((r) => captions[r]!));
      present.forEach((r, i) => vectors.set(embedded.subarray(i * minilm.dim, (i + 1) * minilm.dim), r * minilm.dim));
    }
    return { vectors, prompts: captions.map((c) => c ?? null) };
  };
}

/** Members to compute: the asked-for ones (default: the weighted ones, else the defaults) that exist and carry weight. */
export function chooseMembers(
  asked: readonly MemberName[] | undefined,
  weights: EnsembleWeights | undefined,
  weightsName: string,
  notice: (message: string) => void,
  hasCaptioner = false,
): MemberName[] {
  const available: readonly MemberName[] = hasCaptioner ? [...DEFAULT_MEMBERS, 'captioner'] : DEFAULT_MEMBERS;
  const weighted = weights ? Object.keys(weights.members).filter((n) => weights.members[n]! > 0) : undefined;
  const wanted = asked ?? (weighted as MemberName[] | undefined) ?? [...available];
  const out: MemberName[] = [];
  for (const name of wanted) {
    if (name === 'captioner' && !hasCaptioner) {
      notice('member captioner needs a caption model (--caption-model, or captionModel); it is absent from the ensemble');
    } else if (!(available as readonly string[]).includes(name)) {
      notice(`warning: ${weightsName} names member "${name}", which this version does not know; it is absent`);
    } else if (weighted && !weighted.includes(name)) {
      notice(`member ${name} has no weight in ${weightsName}; it is not computed`);
    } else {
      out.push(name);
    }
  }
  if (out.length === 0) {
    throw new Img2PromptError(weights ? weightsName : undefined, `none of the members ${wanted.join(', ')} can be computed (available: ${available.join(', ')})`);
  }
  return out;
}

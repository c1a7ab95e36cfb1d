import { Img2PromptError } from '../util/errors.js';
import type { Interrogator } from '../interrogate/interrogator.js';
import type { InterrogateMode } from '../interrogate/types.js';
import type { TextEmbedder } from '../text/embedder.js';
import type { LinearMap } from './linear-map.js';
import type { NearestPrompt, PromptBank, PromptBankOptions } from './prompt-bank.js';
import type { EnsembleWeights } from './ensemble.js';
import type { ExifMode } from '../image/decode.js';
import type { ImageInput } from '../image/image-input.js';

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
 * - onnx:NAME:    a user's ONNX model, image → 384-d prompt vector (onnx-member.ts), given with
 *                 `--member NAME=FILE.onnx` (onnxMembers). The prefix keeps the user's names apart from
 *                 the built-in ones, now and in later versions, and lets a weights file that names one
 *                 say which option brings it back.
 * - head:NAME:    a head fitted on the user's own labelled images (fit-head; head.ts), CLIP image
 *                 embedding → prompt vector, given with `--member NAME=head.json` (heads).
 */

export const MEMBER_NAMES = ['knn', 'map', 'interrogator', 'captioner'] as const;
export type MemberName = (typeof MEMBER_NAMES)[number];
/** The members computed by default without a caption model; with one, the captioner joins them. */
export const DEFAULT_MEMBERS: readonly MemberName[] = ['knn', 'map', 'interrogator'];

/** An ONNX member's name in the ensemble (weights, checkpoints, results): `onnx:` and the name the user gave it. */
export type OnnxMemberName = `onnx:${string}`;
/** A fitted head's name in the ensemble: `head:` and the name the user gave it. */
export type HeadMemberName = `head:${string}`;
/** A member the user brings: an ONNX model or a fitted head. */
export type UserMemberName = OnnxMemberName | HeadMemberName;
/** Any member of the ensemble: a built-in one, an ONNX one or a fitted head. */
export type EnsembleMemberName = MemberName | UserMemberName;

export const ONNX_MEMBER_PREFIX = 'onnx:';
export const HEAD_MEMBER_PREFIX = 'head:';
const ONNX_NAME = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;

/**
 * Why `name` cannot name an ONNX member (undefined when it can). A safe identifier: it is written
 * into weights files, checkpoints and CSV headers, and read back from command lines.
 */
export function onnxMemberNameProblem(name: string): string | undefined {
  if ((MEMBER_NAMES as readonly string[]).includes(name)) return `is a built-in member's name (${MEMBER_NAMES.join(', ')}); choose another`;
  if (!ONNX_NAME.test(name)) return 'must start with a letter and hold only letters, digits, _ and - (at most 64)';
  return undefined;
}

/** The ensemble name of the ONNX member the user called `name`. */
export function onnxMemberName(name: string): OnnxMemberName {
  return `${ONNX_MEMBER_PREFIX}${name}`;
}

export function isOnnxMemberName(name: string): name is OnnxMemberName {
  return name.startsWith(ONNX_MEMBER_PREFIX) && onnxMemberNameProblem(name.slice(ONNX_MEMBER_PREFIX.length)) === undefined;
}

/** The ensemble name of the fitted head the user called `name`. */
export function headMemberName(name: string): HeadMemberName {
  return `${HEAD_MEMBER_PREFIX}${name}`;
}

export function isHeadMemberName(name: string): name is HeadMemberName {
  return name.startsWith(HEAD_MEMBER_PREFIX) && onnxMemberNameProblem(name.slice(HEAD_MEMBER_PREFIX.length)) === undefined;
}

/** What a user member is called in messages, and the option that brings it. */
function userMemberWording(name: UserMemberName): { what: string; option: string } {
  const head = isHeadMemberName(name);
  const bare = name.slice((head ? HEAD_MEMBER_PREFIX : ONNX_MEMBER_PREFIX).length);
  return head
    ? { what: 'head member', option: `--member ${bare}=FILE.json, or heads` }
    : { what: 'ONNX member', option: `--member ${bare}=FILE.onnx, or onnxMembers` };
}

/** True for a built-in member, a well-formed `onnx:NAME` or `head:NAME`. */
export function isEnsembleMemberName(name: string): name is EnsembleMemberName {
  return (MEMBER_NAMES as readonly string[]).includes(name) || isOnnxMemberName(name) || isHeadMemberName(name);
}

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
  /** The images themselves, in row order (the ones CLIP could read), for members that preprocess them their own way. */
  inputs?: readonly ImageInput[];
  /** How the run decodes images, so a member that decodes them again sees the same pixels. */
  decode?: { exif: ExifMode; allowSvg: boolean };
}

/** A member: image embeddings [rows, clipDim] (unit rows) → its predictions. */
export type Member = (imageEmbeds: Float32Array, rows: number, batch: MemberBatch) => Promise<MemberOutput>;

/** Parses a comma-separated member list ("knn,map,onnx:vit"), refusing unknown names and repeats. */
export function parseMemberList(text: string, what = '--members'): EnsembleMemberName[] {
  const names = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (names.length === 0) throw new Img2PromptError(undefined, `${what} names no members (choose from ${MEMBER_NAMES.join(', ')})`);
  const seen = new Set<string>();
  for (const n of names) {
    if (!isEnsembleMemberName(n)) {
      const onnx = n.startsWith(ONNX_MEMBER_PREFIX)
        ? `; an ONNX member's NAME ${onnxMemberNameProblem(n.slice(ONNX_MEMBER_PREFIX.length))}`
        : n.startsWith(HEAD_MEMBER_PREFIX)
          ? `; a head member's NAME ${onnxMemberNameProblem(n.slice(HEAD_MEMBER_PREFIX.length))}`
          : '; an ONNX member is onnx:NAME (--member NAME=FILE.onnx)';
      throw new Img2PromptError(undefined, `${what}: unknown member "${n}" (choose from ${MEMBER_NAMES.join(', ')})${onnx}`);
    }
    if (seen.has(n)) throw new Img2PromptError(undefined, `${what}: member "${n}" is listed twice`);
    seen.add(n);
  }
  return names as EnsembleMemberName[];
}

/** parseMemberList for a command that has no ONNX members (serve): built-in names only. */
export function parseBuiltInMemberList(text: string, what = '--members'): MemberName[] {
  const names = parseMemberList(text, what);
  const onnx = names.find((n) => isOnnxMemberName(n));
  if (onnx !== undefined) throw new Img2PromptError(undefined, `${what}: this command has no ONNX members ("${onnx}"); choose from ${MEMBER_NAMES.join(', ')}`);
  const head = names.find((n) => isHeadMemberName(n));
  if (head !== undefined) throw new Img2PromptError(undefined, `${what}: this command has no head members ("${head}"); choose from ${MEMBER_NAMES.join(', ')}`);
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

/**
 * Members to compute: the asked-for ones (default: the weighted ones, else the defaults and the ONNX
 * members and heads given) that exist and carry weight. `onnx`: the user members given (onnxMembers, heads).
 */
export function chooseMembers(
  asked: readonly EnsembleMemberName[] | undefined,
  weights: EnsembleWeights | undefined,
  weightsName: string,
  notice: (message: string) => void,
  hasCaptioner = false,
  onnx: readonly UserMemberName[] = [],
): EnsembleMemberName[] {
  const builtIn: readonly MemberName[] = hasCaptioner ? [...DEFAULT_MEMBERS, 'captioner'] : DEFAULT_MEMBERS;
  const available: readonly EnsembleMemberName[] = [...builtIn, ...onnx];
  const weighted = weights ? Object.keys(weights.members).filter((n) => weights.members[n]! > 0) : undefined;
  const wanted = asked ?? (weighted as EnsembleMemberName[] | undefined) ?? [...available];
  const out: EnsembleMemberName[] = [];
  for (const name of onnx) {
    if (!wanted.includes(name)) {
      notice(`${userMemberWording(name).what} ${name} is not among the members ${asked ? 'asked for (--members)' : `weighted in ${weightsName}`}; it is not computed`);
    }
  }
  for (const name of wanted) {
    if (name === 'captioner' && !hasCaptioner) {
      notice('member captioner needs a caption model (--caption-model, or captionModel); it is absent from the ensemble');
    } else if ((isOnnxMemberName(name) || isHeadMemberName(name)) && !available.includes(name)) {
      const { what, option } = userMemberWording(name);
      notice(`${asked ? 'the members asked for name' : `${weightsName} names`} ${what} ${name}, whose ${what === 'head member' ? 'head file' : 'model'} was not given (${option}); it is absent`);
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

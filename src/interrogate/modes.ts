import { Img2PromptError } from '../util/errors.js';
import { rowView, type Rows } from '../util/rows.js';
import { bottomk, topk } from '../rank/topk.js';
import { CLIP_MAX_TOKENS } from './types.js';
import type { ChosenLabel, ClipTextSide, EmbeddedBank, InterrogationResult } from './types.js';

/**
 * The CLIP Interrogator's four modes (after pharmapsychotic's clip-interrogator), over embedded label
 * banks and image embeddings:
 *
 * - fast:     caption + the labels most similar to the image over all banks merged, in score order,
 *             each one added only if the prompt still fits CLIP's 77 tokens.
 * - classic:  "caption, medium artist, trending, movement, flavor, flavor, flavor", each slot the
 *             top label of its bank.
 * - best:     a greedy chain: from the caption (or the best label) keep appending whichever of the
 *             top shortlisted labels raises the similarity of the WHOLE prompt text to the image the
 *             most; then the best of caption, classic, fast and chain by that same similarity.
 * - negative: the same chain over the least similar flavors plus the negative list, minimising.
 *
 * All take a batch of n images ([n, dim] unit rows) and return one result per image. Ranking
 * against banks runs on the native top-k kernel (or a bank's GPU ranker), all images at once; chains
 * run per image on the text encoder.
 */

export interface InterrogatorBanks {
  artists: EmbeddedBank;
  flavors: EmbeddedBank;
  mediums: EmbeddedBank;
  movements: EmbeddedBank;
  trendings: EmbeddedBank;
  negative: EmbeddedBank;
  /** User banks; they join the merged ranking of fast and best. */
  extras: EmbeddedBank[];
}

export interface ModeContext {
  text: ClipTextSide;
  banks: InterrogatorBanks;
  /** Prompt length limit in CLIP tokens (start and end included); default 77. */
  maxTokens?: number;
  /** Most prompts per encodeTexts call during chains; default 1024. */
  encodeBatch?: number;
}

export interface ModeImages {
  /** [n, dim] unit rows (the interrogator checks them; the modes rank them as they are). */
  embeds: Rows;
  /** Optional caption per image (e.g. from a captioning model); undefined or '' for none. */
  captions?: readonly (string | undefined)[];
}

export interface ScoreOption {
  /**
   * Encode each finished prompt with the text tower to report its `similarity` to the image; default
   * true. The prompt does not depend on it: a caller that only wants the text (the predict ensemble)
   * sets false and saves one text-tower pass per image (`similarity` is then NaN).
   */
  score?: boolean;
}

export interface FastOptions extends ScoreOption {
  /** Labels considered, best first; default 32 (as upstream). */
  maxFlavors?: number;
}

export interface ClassicOptions extends ScoreOption {
  /** Flavors appended after the movement; default 3. */
  maxFlavors?: number;
}

export interface ChainOptions {
  /** Labels the chain may add at most; default 32. */
  maxFlavors?: number;
  /**
   * The chain keeps adding its best candidate for this many steps even when similarity drops (it
   * returns the best prompt seen, so this only widens the search); default 8, as upstream. 0 stops
   * at the first step without gain.
   */
  minFlavors?: number;
  /** Labels shortlisted by image similarity before chaining; default 2048 (upstream's intermediate count). */
  shortlist?: number;
  /**
   * Score each step's candidates through the text side's shared-prefix encoder when it has one
   * (default true): every candidate is "<current prompt>, <label>", so the prompt's tokens run once
   * per step instead of once per candidate. false scores each candidate in full (for comparison).
   */
  chainCache?: boolean;
}

export interface BestOptions extends ChainOptions {}

/** A label with its similarity to one image. */
type Ranked = ChosenLabel;

/** The banks that the merged ranking of fast and best concatenates, in upstream order. */
export function mergedBanks(banks: InterrogatorBanks): EmbeddedBank[] {
  return [banks.artists, banks.flavors, banks.mediums, banks.movements, banks.trendings, ...banks.extras];
}

function checkImages(ctx: ModeContext, images: ModeImages): void {
  const { data, rows: n, dim: width } = images.embeds;
  const dim = ctx.text.dim;
  if (!Number.isInteger(n) || n < 0 || width !== dim || data.length !== n * dim) {
    throw new Img2PromptError(undefined, `image embeddings hold ${data.length} values of width ${width}, expected ${n} x ${dim}`);
  }
  if (images.captions && images.captions.length !== n) {
    throw new Img2PromptError(undefined, `${images.captions.length} captions for ${n} images`);
  }
}

function captionOf(images: ModeImages, i: number): string {
  return images.captions?.[i]?.trim() ?? '';
}

function imageRow(images: ModeImages, i: number): Float32Array {
  return rowView(images.embeds, i);
}

/**
 * The k labels of `bank` most similar (or, with `least`, least similar) to each image, best first.
 * This is the one place ranking happens: on the bank's GPU ranker when it has one, else the native kernel.
 */
export async function rankBank(images: ModeImages, bank: EmbeddedBank, k: number, least = false): Promise<Ranked[][]> {
  const rows = bank.labels.length;
  const queries = images.embeds;
  const result = bank.ranker
    ? await bank.ranker.rank(queries, Math.min(k, rows), { least })
    : await (least ? bottomk : topk)(queries, bank.matrix, Math.min(k, rows), { label: bank.source });
  const out: Ranked[][] = [];
  for (let i = 0; i < images.embeds.rows; i++) {
    const list: Ranked[] = [];
    for (let j = 0; j < result.k; j++) {
      const at = i * result.k + j;
      list.push({ label: bank.labels[result.indices[at]], bank: bank.name, score: result.scores[at] });
    }
    out.push(list);
  }
  return out;
}

/**
 * Ranking over several banks as if concatenated: the best k of the per-bank best k. A label found in
 * two banks is kept once, with its better rank.
 */
export async function rankMerged(images: ModeImages, banks: readonly EmbeddedBank[], k: number, least = false): Promise<Ranked[][]> {
  const perBank = await Promise.all(banks.map((b) => rankBank(images, b, k, least)));
  const sign = least ? -1 : 1;
  return Array.from({ length: images.embeds.rows }, (_, i) => {
    // Stable sort: equal scores keep bank order, then row order, like a ranking of the concatenation.
    const all = perBank.flatMap((lists) => lists[i]).sort((a, b) => sign * (b.score - a.score));
    return uniqueLabels(all).slice(0, k);
  });
}

function uniqueLabels(list: readonly Ranked[]): Ranked[] {
  const seen = new Set<string>();
  return list.filter((r) => (seen.has(r.label) ? false : (seen.add(r.label), true)));
}

function dot(a: Float32Array, aStart: number, b: Float32Array, dim: number): number {
  let sum = 0;
  for (let d = 0; d < dim; d++) sum += a[aStart + d] * b[d];
  return sum;
}

/**
 * Cosine similarity of each prompt's text embedding to its image, the prompts encoded in batches of
 * `encodeBatch`. An empty prompt scores 0 (nothing to encode).
 */
async function scorePrompts(
  ctx: ModeContext,
  pairs: readonly { prompt: string; image: Float32Array }[],
  encode: (texts: string[]) => Promise<Float32Array> = (texts) => ctx.text.encodeTexts(texts),
): Promise<number[]> {
  const dim = ctx.text.dim;
  const batch = ctx.encodeBatch ?? 1024;
  const out = new Array<number>(pairs.length).fill(0);
  const todo = pairs.map((p, i) => ({ ...p, i })).filter((t) => t.prompt !== '');
  for (let s = 0; s < todo.length; s += batch) {
    const part = todo.slice(s, s + batch);
    const embeds = await encode(part.map((t) => t.prompt));
    if (embeds.length !== part.length * dim) {
      throw new Img2PromptError(undefined, `text encoder returned ${embeds.length} values for ${part.length} prompts of dimension ${dim}`);
    }
    part.forEach((t, j) => (out[t.i] = dot(embeds, j * dim, t.image, dim)));
  }
  return out;
}

/** Cosine similarity of each prompt's text embedding to `image`. */
export function promptSimilarities(ctx: ModeContext, image: Float32Array, prompts: readonly string[]): Promise<number[]> {
  return scorePrompts(ctx, prompts.map((prompt) => ({ prompt, image })));
}

/** promptSimilarities for one chain step's candidates, which all extend the same prompt (see ChainOptions.chainCache). */
function candidateSimilarities(ctx: ModeContext, image: Float32Array, prompts: readonly string[], cache: boolean): Promise<number[]> {
  const shared = cache ? ctx.text.encodeTextsSharingPrefix?.bind(ctx.text) : undefined;
  return scorePrompts(ctx, prompts.map((prompt) => ({ prompt, image })), shared);
}

/** Prompt text: non-empty pieces joined the way the engine joins them. */
function joinPrompt(prefix: string, addition: string): string {
  return prefix === '' ? addition : `${prefix}, ${addition}`;
}

/**
 * CLIP tokens of joinPrompt(prefix, addition), given the prefix's own count: through the text side's
 * countTokensJoined where it has one (the prefix is then not tokenized again), else in full.
 */
function joinedTokens(ctx: ModeContext, prefix: string, prefixCount: number, addition: string): number {
  if (prefix === '') return ctx.text.countTokens(addition);
  return ctx.text.countTokensJoined?.(prefix, prefixCount, ', ', addition) ?? ctx.text.countTokens(joinPrompt(prefix, addition));
}

interface Piece {
  text: string;
  labels: Ranked[];
}

/**
 * Keeps pieces from the start while the prompt fits; the first piece (the caption, or the first
 * slot) always stays. `skipOverflow` passes over a piece that does not fit and tries the next
 * (fast mode); otherwise the first piece that does not fit ends the prompt (classic, as upstream).
 */
function fitPieces(pieces: readonly Piece[], ctx: ModeContext, skipOverflow: boolean): { prompt: string; labels: Ranked[] } {
  const max = ctx.maxTokens ?? CLIP_MAX_TOKENS;
  let prompt = '';
  let tokens = 0;
  const labels: Ranked[] = [];
  for (const [i, piece] of pieces.entries()) {
    const count = joinedTokens(ctx, prompt, tokens, piece.text);
    if (i > 0 && count > max) {
      if (skipOverflow) continue;
      break;
    }
    prompt = joinPrompt(prompt, piece.text);
    tokens = count;
    labels.push(...piece.labels);
  }
  return { prompt, labels };
}

async function finish(
  ctx: ModeContext,
  images: ModeImages,
  mode: InterrogationResult['mode'],
  built: { prompt: string; labels: Ranked[] }[],
  options: ScoreOption,
): Promise<InterrogationResult[]> {
  if (options.score === false) return built.map((b) => ({ mode, prompt: b.prompt, similarity: NaN, labels: b.labels }));
  // One encoder pass for the whole batch: prompt i is scored against image i.
  const similarity = await scorePrompts(ctx, built.map((b, i) => ({ prompt: b.prompt, image: imageRow(images, i) })));
  return built.map((b, i) => ({ mode, prompt: b.prompt, similarity: similarity[i], labels: b.labels }));
}

export async function fastMode(ctx: ModeContext, images: ModeImages, options: FastOptions = {}): Promise<InterrogationResult[]> {
  checkImages(ctx, images);
  const ranked = await rankMerged(images, mergedBanks(ctx.banks), options.maxFlavors ?? 32);
  const built = ranked.map((labels, i) => {
    const caption = captionOf(images, i);
    const pieces: Piece[] = labels.map((r) => ({ text: r.label, labels: [r] }));
    if (caption === '') return fitPieces(pieces, ctx, true);
    return fitPieces([{ text: caption, labels: [] }, ...pieces], ctx, true);
  });
  return finish(ctx, images, 'fast', built, options);
}

export async function classicMode(ctx: ModeContext, images: ModeImages, options: ClassicOptions = {}): Promise<InterrogationResult[]> {
  checkImages(ctx, images);
  const { banks } = ctx;
  const [mediums, artists, trendings, movements, flavors] = await Promise.all([
    rankBank(images, banks.mediums, 1),
    rankBank(images, banks.artists, 1),
    rankBank(images, banks.trendings, 1),
    rankBank(images, banks.movements, 1),
    rankBank(images, banks.flavors, options.maxFlavors ?? 3),
  ]);
  const built = mediums.map((_, i) => {
    const caption = captionOf(images, i);
    const [medium] = mediums[i];
    const [artist] = artists[i];
    const pieces: Piece[] = [];
    // Upstream drops the medium when the caption already opens with it ("a painting of ..." + "a painting").
    if (caption !== '' && caption.startsWith(medium.label)) {
      pieces.push({ text: `${caption} ${artist.label}`, labels: [artist] });
    } else {
      if (caption !== '') pieces.push({ text: caption, labels: [] });
      pieces.push({ text: `${medium.label} ${artist.label}`, labels: [medium, artist] });
    }
    for (const r of [trendings[i][0], movements[i][0], ...flavors[i]]) pieces.push({ text: r.label, labels: [r] });
    return fitPieces(pieces, ctx, false);
  });
  return finish(ctx, images, 'classic', built, options);
}

interface Chained {
  prompt: string;
  labels: Ranked[];
  similarity: number;
}

/**
 * Greedy chain for one image. Each step scores "<current prompt>, <candidate>" for every remaining
 * candidate that still fits the token limit, through the text encoder, and takes the best (the
 * lowest with `reverse`). It stops when the best step does not improve on the current prompt (after
 * `minFlavors` steps), after `maxFlavors` steps, or when nothing fits; it returns the best prompt seen.
 */
export async function chain(
  ctx: ModeContext,
  image: Float32Array,
  candidates: readonly Ranked[],
  start: Chained | undefined,
  options: ChainOptions & { reverse?: boolean } = {},
): Promise<Chained> {
  const sign = options.reverse ? -1 : 1;
  const max = ctx.maxTokens ?? CLIP_MAX_TOKENS;
  const minCount = options.minFlavors ?? 8;
  const maxCount = options.maxFlavors ?? 32;
  let remaining = uniqueLabels(candidates);
  if (!start) {
    // No caption: open with the label closest to the image (farthest, in reverse).
    const fitting = remaining.filter((r) => ctx.text.countTokens(r.label) <= max);
    if (fitting.length === 0) return { prompt: '', labels: [], similarity: 0 };
    const first = fitting.reduce((a, b) => (sign * b.score > sign * a.score ? b : a));
    const [similarity] = await promptSimilarities(ctx, image, [first.label]);
    start = { prompt: first.label, labels: [first], similarity };
    remaining = remaining.filter((r) => r !== first);
  }
  let current = start;
  let best = start;
  for (let step = 0; step < maxCount; step++) {
    // The prompt only grows, so a label that no longer fits never will again.
    const promptTokens = ctx.text.countTokens(current.prompt);
    remaining = remaining.filter((r) => joinedTokens(ctx, current.prompt, promptTokens, r.label) <= max);
    if (remaining.length === 0) break;
    const prompts = remaining.map((r) => joinPrompt(current.prompt, r.label));
    const sims = await candidateSimilarities(ctx, image, prompts, options.chainCache ?? true);
    let pick = 0;
    for (let j = 1; j < sims.length; j++) if (sign * sims[j] > sign * sims[pick]) pick = j;
    const next: Chained = { prompt: prompts[pick], labels: [...current.labels, remaining[pick]], similarity: sims[pick] };
    if (sign * next.similarity > sign * best.similarity) best = next;
    if (!(sign * next.similarity > sign * current.similarity || step < minCount)) break;
    current = next;
    remaining = remaining.filter((_, j) => j !== pick);
  }
  return best;
}

export async function bestMode(ctx: ModeContext, images: ModeImages, options: BestOptions = {}): Promise<InterrogationResult[]> {
  checkImages(ctx, images);
  const maxFlavors = options.maxFlavors ?? 32;
  const [shortlists, fast, classic] = await Promise.all([
    rankMerged(images, mergedBanks(ctx.banks), options.shortlist ?? 2048),
    fastMode(ctx, images, { maxFlavors }),
    // Upstream's best mode asks classic for as many flavors as the chain may use, then fits to 77 tokens.
    classicMode(ctx, images, { maxFlavors }),
  ]);
  const out: InterrogationResult[] = [];
  for (let i = 0; i < images.embeds.rows; i++) {
    const image = imageRow(images, i);
    const caption = captionOf(images, i);
    let start: Chained | undefined;
    if (caption !== '') start = { prompt: caption, labels: [], similarity: (await promptSimilarities(ctx, image, [caption]))[0] };
    const chained = await chain(ctx, image, shortlists[i], start, options);
    // Ties go to the earlier entry, as upstream's argmax over [caption, classic, fast, chain].
    const contenders: { picked: NonNullable<InterrogationResult['picked']>; r: Chained }[] = [];
    if (start) contenders.push({ picked: 'caption', r: start });
    contenders.push({ picked: 'classic', r: classic[i] }, { picked: 'fast', r: fast[i] }, { picked: 'chain', r: chained });
    const win = contenders.reduce((a, b) => (b.r.similarity > a.r.similarity ? b : a));
    out.push({ mode: 'best', prompt: win.r.prompt, similarity: win.r.similarity, labels: win.r.labels, picked: win.picked });
  }
  return out;
}

export async function negativeMode(ctx: ModeContext, images: ModeImages, options: ChainOptions = {}): Promise<InterrogationResult[]> {
  checkImages(ctx, images);
  const { flavors, negative } = ctx.banks;
  const [leastFlavors, negatives] = await Promise.all([
    rankBank(images, flavors, options.shortlist ?? 2048, true),
    rankBank(images, negative, negative.labels.length, true),
  ]);
  const out: InterrogationResult[] = [];
  for (let i = 0; i < images.embeds.rows; i++) {
    const chained = await chain(ctx, imageRow(images, i), [...leastFlavors[i], ...negatives[i]], undefined, { ...options, reverse: true });
    out.push({ mode: 'negative', prompt: chained.prompt, similarity: chained.similarity, labels: chained.labels });
  }
  return out;
}

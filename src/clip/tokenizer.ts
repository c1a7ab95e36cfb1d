import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { parseJsonObject } from '../util/json-file.js';
import { Img2PromptError, errorMessage } from '../util/errors.js';
import { CLIP_CONTEXT_LENGTH, CLIP_EOT_ID, CLIP_SOT_ID } from './config.js';
import { CLIP_EOT_TOKEN, CLIP_MERGE_COUNT, CLIP_SOT_TOKEN, ClipBpe, clipVocabFromMerges } from './bpe.js';
import { hfPieces, openClipPieces, type AddedToken, type ClipPiece, type ClipTokenizerKind } from './pre-tokenize.js';

/**
 * The CLIP tokenizer (49,408-token byte-level BPE) as open_clip's or transformers' implementation
 * runs it, chosen by `kind`: the two clean the text differently (see pre-tokenize.ts), so a model is
 * given the ids its own reference produces. Wrapped the way both encode a prompt: [SOT] body [EOT],
 * truncated to the context length with the EOT kept as the last token.
 */

/**
 * Bump when this tokenizer's output changes for some text, so that embeddings cached from the old ids
 * (label banks, prompt banks) are rebuilt: it is part of `ClipTokenizer.identity`.
 */
export const CLIP_TOKENIZER_VERSION = 2;

/** Printable ASCII without '&' or '<' (see ClipTokenizer.countTokensJoined). */
const PLAIN_TEXT = /^[\x20-\x25\x27-\x3b\x3d-\x7e]*$/;
/** A joiner of at least one space or punctuation mark and nothing else: no letter, digit, apostrophe, '&' or '<' (an empty one would glue two words). */
const PLAIN_JOINER = /^[\x20-\x25\x28-\x2f\x3a\x3b\x3d-\x40\x5b-\x60\x7b-\x7e]+$/;
const ALNUM_START = /^[A-Za-z0-9]/;
const ALNUM_END = /[A-Za-z0-9]$/;

export const OPEN_CLIP_PAD_ID = 0;
/** HF's CLIPTokenizer pads with <|endoftext|>. */
export const HF_CLIP_PAD_ID = CLIP_EOT_ID;

export type ClipPadding = 'open_clip' | 'hf';

export function padIdFor(padding: ClipPadding): number {
  return padding === 'open_clip' ? OPEN_CLIP_PAD_ID : HF_CLIP_PAD_ID;
}

export interface ClipTokenBatch {
  /** Row-major [batch, seqLen] int64 ids, right-padded. */
  inputIds: BigInt64Array;
  batch: number;
  seqLen: number;
}

/**
 * Right-pad encoded sequences into one [batch, length] int64 array; `length` 'longest' pads to the
 * longest sequence (dynamic padding). The text graph pools at the EOT and attends causally, so any
 * padding length at or above each sequence's own length gives the same embeddings.
 */
export function padClipBatch(seqs: readonly (readonly number[])[], length: number | 'longest', padId: number): ClipTokenBatch {
  const longest = seqs.reduce((m, s) => Math.max(m, s.length), 0);
  const seqLen = length === 'longest' ? longest : length;
  if (!Number.isInteger(seqLen) || seqLen < 0) throw new RangeError(`pad length must be a non-negative integer, got ${length}`);
  if (longest > seqLen) throw new RangeError(`a sequence of ${longest} tokens does not fit a pad length of ${seqLen}`);
  const inputIds = new BigInt64Array(seqs.length * seqLen).fill(BigInt(padId));
  seqs.forEach((s, r) => {
    for (let i = 0; i < s.length; i++) inputIds[r * seqLen + i] = BigInt(s[i]!);
  });
  return { inputIds, batch: seqs.length, seqLen };
}

async function readText(file: string): Promise<string> {
  try {
    return await fs.readFile(file, 'utf-8');
  } catch (err) {
    throw new Img2PromptError(file, `cannot read: ${errorMessage(err)}`, { code: 'FILE_UNREADABLE', cause: err });
  }
}

/** Merge lines of a merges.txt / bpe_simple_vocab file: skip the "#version" header and blank lines. */
function mergeLines(text: string, file: string): string[] {
  const lines = text.split('\n').map((l) => l.replace(/\r$/, ''));
  const start = lines[0]?.includes('#version') ? 1 : 0;
  const merges = lines.slice(start).filter((l) => l.length > 0);
  for (const m of merges.slice(0, 10)) {
    if (m.split(' ').length !== 2) throw new Img2PromptError(file, `not a BPE merge list: line "${m}" is not two symbols`, { code: 'FILE_INVALID' });
  }
  return merges;
}

export interface ClipTokenizerOptions {
  /** Whose tokenizer to reproduce: open_clip's (open_clip checkpoints) or transformers' (HF checkpoints). */
  kind: ClipTokenizerKind;
  /** Context length including SOT and EOT (default 77). */
  contextLength?: number;
}

/** The special tokens of an HF CLIP tokenizer.json, or those transformers gives a tokenizer without one. */
function addedTokensOf(json: Record<string, unknown> | undefined, startNormalized: boolean, bpe: ClipBpe, source: string): AddedToken[] {
  const listed = Array.isArray(json?.added_tokens) ? (json.added_tokens as Record<string, unknown>[]) : undefined;
  if (listed) {
    return listed.map((t) => {
      if (typeof t.content !== 'string' || !Number.isInteger(t.id)) throw new Img2PromptError(source, 'added_tokens entries need a string "content" and an integer "id"', { code: 'FILE_INVALID' });
      return { content: t.content, id: t.id as number, normalized: t.normalized === true };
    });
  }
  return [
    { content: CLIP_SOT_TOKEN, id: bpe.tokenId(CLIP_SOT_TOKEN)!, normalized: startNormalized },
    { content: CLIP_EOT_TOKEN, id: bpe.tokenId(CLIP_EOT_TOKEN)!, normalized: false },
  ];
}

/** tokenizer.json's BPE merges: "a b" strings, or [a, b] pairs in newer files. */
function tokenizerJsonMerges(model: Record<string, unknown>, source: string): string[] {
  const merges = model.merges;
  if (!Array.isArray(merges)) throw new Img2PromptError(source, 'tokenizer.json has no BPE merge list', { code: 'FILE_INVALID' });
  return merges.map((m) => {
    if (typeof m === 'string') return m;
    if (Array.isArray(m) && m.length === 2 && m.every((x) => typeof x === 'string')) return `${m[0]} ${m[1]}`;
    throw new Img2PromptError(source, `tokenizer.json merge ${JSON.stringify(m)} is neither "a b" nor ["a", "b"]`, { code: 'FILE_INVALID' });
  });
}

export class ClipTokenizer {
  private constructor(
    private readonly bpe: ClipBpe,
    readonly kind: ClipTokenizerKind,
    private readonly addedTokens: readonly AddedToken[],
    readonly source: string,
    readonly contextLength: number,
    readonly sotId: number,
    readonly eotId: number,
  ) {}

  /**
   * Load from a directory holding tokenizer.json, or vocab.json + merges.txt, or open_clip's
   * bpe_simple_vocab_16e6.txt.gz (tried in that order); or from a path to one of those files.
   */
  static async load(location: string, options: ClipTokenizerOptions): Promise<ClipTokenizer> {
    const isDir = (await fs.stat(location).catch(() => undefined))?.isDirectory() ?? false;
    const dir = isDir ? location : path.dirname(location);
    const pick = (name: string) => (isDir ? (existsSync(path.join(dir, name)) ? path.join(dir, name) : undefined) : path.basename(location) === name ? location : undefined);
    const tokenizerJson = pick('tokenizer.json');
    if (tokenizerJson) return ClipTokenizer.fromTokenizerJson(parseJsonObject(tokenizerJson, await readText(tokenizerJson)), tokenizerJson, options);
    const vocabJson = pick('vocab.json') ?? (!isDir && path.basename(location) === 'merges.txt' ? path.join(dir, 'vocab.json') : undefined);
    if (vocabJson) {
      const mergesTxt = path.join(dir, 'merges.txt');
      const vocab = parseJsonObject(vocabJson, await readText(vocabJson)) as Record<string, number>;
      // Without a tokenizer.json, transformers takes <|startoftext|>'s matching from tokenizer_config.json.
      const configFile = path.join(dir, 'tokenizer_config.json');
      const config = existsSync(configFile) ? parseJsonObject(configFile, await readText(configFile)) : {};
      const bos = config.bos_token as { normalized?: unknown } | undefined;
      return ClipTokenizer.fromVocabAndMerges(vocab, mergeLines(await readText(mergesTxt), mergesTxt), vocabJson, options, bos?.normalized === true);
    }
    const gz = isDir ? path.join(dir, 'bpe_simple_vocab_16e6.txt.gz') : location.endsWith('.gz') ? location : undefined;
    if (gz && existsSync(gz)) return ClipTokenizer.fromOpenClipBpe(gz, options);
    throw new Img2PromptError(location, 'no CLIP tokenizer here: expected tokenizer.json, vocab.json + merges.txt, or bpe_simple_vocab_16e6.txt.gz', { code: 'MODEL_MISSING' });
  }

  /** open_clip's gzipped merge list; the vocabulary is derived from it exactly as open_clip does. */
  static async fromOpenClipBpe(file: string, options: ClipTokenizerOptions): Promise<ClipTokenizer> {
    let text: string;
    try {
      text = gunzipSync(await fs.readFile(file)).toString('utf-8');
    } catch (err) {
      throw new Img2PromptError(file, `cannot read gzipped BPE merges: ${errorMessage(err)}`, { code: 'FILE_UNREADABLE', cause: err });
    }
    const merges = mergeLines(text, file).slice(0, CLIP_MERGE_COUNT);
    if (merges.length !== CLIP_MERGE_COUNT) throw new Img2PromptError(file, `has ${merges.length} merges, CLIP needs ${CLIP_MERGE_COUNT}`, { code: 'FILE_INVALID' });
    return ClipTokenizer.fromVocabAndMerges(clipVocabFromMerges(merges), merges, file, options);
  }

  /** `startNormalized`: whether transformers matches <|startoftext|> after normalizing (lower-casing) the text. */
  static fromVocabAndMerges(
    vocab: Record<string, number>,
    merges: readonly string[],
    source: string,
    options: ClipTokenizerOptions,
    startNormalized = false,
  ): ClipTokenizer {
    return ClipTokenizer.create(new ClipBpe(vocab, merges), undefined, startNormalized, source, options);
  }

  /**
   * An HF tokenizer.json: its BPE model and added tokens. Its normalizer and pre-tokenizer are not
   * read: `kind` decides the pipeline, as transformers' CLIPTokenizer builds its own.
   */
  static fromTokenizerJson(json: Record<string, unknown>, source: string, options: ClipTokenizerOptions): ClipTokenizer {
    const model = json.model as Record<string, unknown> | undefined;
    if (!model || model.type !== 'BPE' || typeof model.vocab !== 'object' || model.vocab === null) {
      throw new Img2PromptError(source, 'not a CLIP tokenizer.json: expected a BPE model with a vocabulary', { code: 'FILE_INVALID' });
    }
    const bpe = new ClipBpe(model.vocab as Record<string, number>, tokenizerJsonMerges(model, source));
    return ClipTokenizer.create(bpe, json, false, source, options);
  }

  private static create(bpe: ClipBpe, json: Record<string, unknown> | undefined, startNormalized: boolean, source: string, options: ClipTokenizerOptions): ClipTokenizer {
    const contextLength = options.contextLength ?? CLIP_CONTEXT_LENGTH;
    if (!Number.isInteger(contextLength) || contextLength < 2) throw new Img2PromptError(source, `context length must be an integer >= 2, got ${contextLength}`);
    if (options.kind !== 'open_clip' && options.kind !== 'hf') throw new Img2PromptError(source, `unknown CLIP tokenizer kind "${String(options.kind)}" (open_clip or hf)`);
    const sot = bpe.tokenId(CLIP_SOT_TOKEN);
    const eot = bpe.tokenId(CLIP_EOT_TOKEN);
    if (sot === undefined || eot === undefined) throw new Img2PromptError(source, `vocabulary has no ${sot === undefined ? CLIP_SOT_TOKEN : CLIP_EOT_TOKEN} token`, { code: 'FILE_INVALID' });
    if (sot !== CLIP_SOT_ID || eot !== CLIP_EOT_ID) {
      // The text graph pools at the largest id; a vocabulary with other special ids would break that.
      throw new Img2PromptError(source, `not the CLIP vocabulary: ${CLIP_SOT_TOKEN}=${sot}, ${CLIP_EOT_TOKEN}=${eot} (expected ${CLIP_SOT_ID}, ${CLIP_EOT_ID})`, { code: 'FILE_INVALID' });
    }
    const added = options.kind === 'hf' ? addedTokensOf(json, startNormalized, bpe, source) : [];
    return new ClipTokenizer(bpe, options.kind, added, source, contextLength, sot, eot);
  }

  /**
   * Names what this tokenizer does, for caches of embeddings computed from its ids: the kind, this
   * code's version, the context length and a hash of the vocabulary, merges and special tokens.
   */
  get identity(): string {
    const h = createHash('sha256').update(this.bpe.hash).update(JSON.stringify(this.addedTokens)).digest('hex');
    return `${this.kind}/v${CLIP_TOKENIZER_VERSION}/ctx${this.contextLength}/${h.slice(0, 16)}`;
  }

  private pieces(text: string): ClipPiece[] {
    return this.kind === 'open_clip' ? openClipPieces(text, this.sotId, this.eotId) : hfPieces(text, this.addedTokens);
  }

  /** Token ids of the cleaned text, without SOT/EOT and without truncation. */
  encodeBody(text: string): number[] {
    const ids: number[] = [];
    for (const piece of this.pieces(text)) {
      if (typeof piece === 'number') ids.push(piece);
      else for (const id of this.bpe.encodeWord(piece)) ids.push(id);
    }
    return ids;
  }

  /** [SOT] body [EOT], at most contextLength ids: a longer body is cut and EOT stays last (as both references do). */
  encode(text: string): number[] {
    const body = this.encodeBody(text);
    const keep = Math.min(body.length, this.contextLength - 2);
    const ids = new Array<number>(keep + 2);
    ids[0] = this.sotId;
    for (let i = 0; i < keep; i++) ids[i + 1] = body[i]!;
    ids[keep + 1] = this.eotId;
    return ids;
  }

  /** Tokens the text needs including SOT and EOT, before truncation (so > contextLength means it gets cut). */
  countTokens(text: string): number {
    return this.encodeBody(text).length + 2;
  }

  /**
   * countTokens(prefix + joiner + addition), given `prefixCount` = countTokens(prefix), without
   * tokenizing the prefix again when the join cannot change how it is cut into words. That holds when all
   * three are printable ASCII without '&' (an HTML entity to open_clip) or '<' (a special-token name),
   * which both cleanings only lower-case and whose whitespace runs they collapse, the prefix ends and the
   * addition starts with a letter or digit, and the joiner is one or more spaces or punctuation marks
   * (no apostrophe, which starts the contractions "'s", "'t"...): the words of the whole are then the
   * prefix's, the joiner's and the addition's. A prompt grown a label at a time (interrogate's fast mode, the chains' length filter)
   * then costs the label, not the prompt. Anything else, and a tokenizer with added tokens that could
   * occur in such text, counts the whole text.
   */
  countTokensJoined(prefix: string, prefixCount: number, joiner: string, addition: string): number {
    if (
      this.plainAddedTokens &&
      ALNUM_START.test(addition) && ALNUM_END.test(prefix) && PLAIN_JOINER.test(joiner) &&
      PLAIN_TEXT.test(prefix) && PLAIN_TEXT.test(addition)
    ) {
      // Both counts hold SOT and EOT; the whole needs them once.
      return prefixCount + this.countTokens(joiner + addition) - 2;
    }
    return this.countTokens(prefix + joiner + addition);
  }

  /** No added token can occur in plain text (each has a '<'): true for CLIP's own two. */
  private get plainAddedTokens(): boolean {
    return this.addedTokens.every((t) => t.content.includes('<'));
  }

  /** Whether the whole text fits the context without truncation. */
  fits(text: string): boolean {
    return this.countTokens(text) <= this.contextLength;
  }

  /** BPE pieces of the cleaned text, e.g. ["a</w>", "photo</w>"]; a special token found in the text shows as its name. */
  tokenize(text: string): string[] {
    return this.pieces(text).flatMap((p) => (typeof p === 'number' ? [p === this.sotId ? CLIP_SOT_TOKEN : CLIP_EOT_TOKEN] : this.bpe.pieces(p)));
  }

  /**
   * Encode and pad a batch. Default: pad to the longest sequence of the batch with open_clip's pad id
   * 0; `length: contextLength` reproduces open_clip's fixed [batch, 77] tokens.
   */
  encodeBatch(texts: readonly string[], options: { padding?: ClipPadding; length?: number | 'longest' } = {}): ClipTokenBatch {
    return padClipBatch(
      texts.map((t) => this.encode(t)),
      options.length ?? 'longest',
      padIdFor(options.padding ?? 'open_clip'),
    );
  }
}

import { loadHfTokenizer, requireTokenId } from '../text/hf-tokenizer.js';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { Tokenizer } from '@huggingface/tokenizers';
import { parseJsonObject } from '../util/json-file.js';
import { Img2PromptError, errorMessage } from '../util/errors.js';
import { CLIP_CONTEXT_LENGTH, CLIP_EOT_ID, CLIP_SOT_ID } from './config.js';

/**
 * The CLIP byte-level BPE tokenizer (49,408 tokens, lower-cased), run by @huggingface/tokenizers and
 * wrapped the way open_clip's `tokenize` uses it: [SOT] body [EOT], truncated to the context length
 * with the EOT kept as the last token.
 *
 * Text cleaning follows open_clip (`basic_clean` + `whitespace_clean` + lower()), except that ftfy is
 * not available: mojibake is not repaired, and HTML entities are decoded only for the common named
 * ones and numeric references rather than all of HTML5. Text that is already clean Unicode (all the
 * prompts and label banks this engine sees) tokenizes identically.
 */

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

const NAMED_ENTITIES: Record<string, string> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
  nbsp: '\u00a0',
};

/** Decode numeric character references and the common named entities (see the file comment). */
function unescapeHtml(text: string): string {
  return text.replace(/&(#[0-9]+|#[xX][0-9a-fA-F]+|[a-zA-Z]+);/g, (whole, body: string) => {
    if (body[0] === '#') {
      const code = body[1] === 'x' || body[1] === 'X' ? parseInt(body.slice(2), 16) : parseInt(body.slice(1), 10);
      return code > 0 && code <= 0x10ffff && !(code >= 0xd800 && code <= 0xdfff) ? String.fromCodePoint(code) : whole;
    }
    return NAMED_ENTITIES[body] ?? whole;
  });
}

/** open_clip's text cleaning: unescape HTML twice, collapse whitespace, trim, lower-case (plus NFC, as ftfy does). */
export function cleanClipText(text: string): string {
  const unescaped = unescapeHtml(unescapeHtml(text.normalize('NFC')));
  return unescaped.replace(/\s+/g, ' ').trim().toLowerCase();
}

/** GPT-2's reversible byte → printable-character table, in the order CLIP's vocabulary lists it. */
export function byteLevelAlphabet(): string[] {
  const bytes: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bytes.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bytes.push(b);
  for (let b = 0xae; b <= 0xff; b++) bytes.push(b);
  const chars = bytes.slice();
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    if (!bytes.includes(b)) {
      bytes.push(b);
      chars.push(256 + extra++);
    }
  }
  return chars.map((c) => String.fromCodePoint(c));
}

/** Number of merges CLIP uses from its merge list (49408 − 256 bytes − 256 end-of-word bytes − 2 specials). */
export const CLIP_MERGE_COUNT = 49152 - 256 - 2;

/**
 * The vocabulary as open_clip builds it from a merge list: the 256 byte characters, the same with
 * "</w>", one token per merge, then the two specials (named as in the HF vocab.json).
 */
export function clipVocabFromMerges(merges: readonly string[]): Record<string, number> {
  const alphabet = byteLevelAlphabet();
  const tokens = [...alphabet, ...alphabet.map((c) => `${c}</w>`), ...merges.map((m) => m.replace(' ', '')), '<|startoftext|>', '<|endoftext|>'];
  const vocab: Record<string, number> = {};
  tokens.forEach((t, i) => {
    vocab[t] = i;
  });
  return vocab;
}

/** tokenizer.json equivalent to HF's openai/clip-* one, for a vocabulary and merge list. */
function tokenizerJsonFor(vocab: Record<string, number>, merges: readonly string[]): Record<string, unknown> {
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(vocab['<|startoftext|>']!, '<|startoftext|>'), special(vocab['<|endoftext|>']!, '<|endoftext|>')],
    normalizer: {
      type: 'Sequence',
      normalizers: [{ type: 'NFC' }, { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' }, { type: 'Lowercase' }],
    },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        {
          type: 'Split',
          pattern: { Regex: "'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+" },
          behavior: 'Removed',
          invert: true,
        },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true },
      ],
    },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<|endoftext|>',
      continuing_subword_prefix: '',
      end_of_word_suffix: '</w>',
      fuse_unk: false,
      vocab,
      merges: [...merges],
    },
  };
}

async function readText(file: string): Promise<string> {
  try {
    return await fs.readFile(file, 'utf-8');
  } catch (err) {
    throw new Img2PromptError(file, `cannot read: ${errorMessage(err)}`, { cause: err });
  }
}


/** Merge lines of a merges.txt / bpe_simple_vocab file: skip the "#version" header and blank lines. */
function mergeLines(text: string, file: string): string[] {
  const lines = text.split('\n').map((l) => l.replace(/\r$/, ''));
  const start = lines[0]?.includes('#version') ? 1 : 0;
  const merges = lines.slice(start).filter((l) => l.length > 0);
  for (const m of merges.slice(0, 10)) {
    if (m.split(' ').length !== 2) throw new Img2PromptError(file, `not a BPE merge list: line "${m}" is not two symbols`);
  }
  return merges;
}

export interface ClipTokenizerOptions {
  /** Context length including SOT and EOT (default 77). */
  contextLength?: number;
}

export class ClipTokenizer {
  private constructor(
    private readonly tokenizer: Tokenizer,
    readonly source: string,
    readonly contextLength: number,
    readonly sotId: number,
    readonly eotId: number,
  ) {}

  /**
   * Load from a directory holding tokenizer.json, or vocab.json + merges.txt, or open_clip's
   * bpe_simple_vocab_16e6.txt.gz (tried in that order); or from a path to one of those files.
   */
  static async load(location: string, options: ClipTokenizerOptions = {}): Promise<ClipTokenizer> {
    const isDir = (await fs.stat(location).catch(() => undefined))?.isDirectory() ?? false;
    const dir = isDir ? location : path.dirname(location);
    const pick = (name: string) => (isDir ? (existsSync(path.join(dir, name)) ? path.join(dir, name) : undefined) : path.basename(location) === name ? location : undefined);
    const tokenizerJson = pick('tokenizer.json');
    if (tokenizerJson) return ClipTokenizer.fromTokenizerJson(parseJsonObject(tokenizerJson, await readText(tokenizerJson)), tokenizerJson, options);
    const vocabJson = pick('vocab.json') ?? (!isDir && path.basename(location) === 'merges.txt' ? path.join(dir, 'vocab.json') : undefined);
    if (vocabJson) {
      const mergesTxt = path.join(dir, 'merges.txt');
      const vocab = parseJsonObject(vocabJson, await readText(vocabJson)) as Record<string, number>;
      return ClipTokenizer.fromVocabAndMerges(vocab, mergeLines(await readText(mergesTxt), mergesTxt), vocabJson, options);
    }
    const gz = isDir ? path.join(dir, 'bpe_simple_vocab_16e6.txt.gz') : location.endsWith('.gz') ? location : undefined;
    if (gz && existsSync(gz)) return ClipTokenizer.fromOpenClipBpe(gz, options);
    throw new Img2PromptError(location, 'no CLIP tokenizer here: expected tokenizer.json, vocab.json + merges.txt, or bpe_simple_vocab_16e6.txt.gz');
  }

  /** open_clip's gzipped merge list; the vocabulary is derived from it exactly as open_clip does. */
  static async fromOpenClipBpe(file: string, options: ClipTokenizerOptions = {}): Promise<ClipTokenizer> {
    let text: string;
    try {
      text = gunzipSync(await fs.readFile(file)).toString('utf-8');
    } catch (err) {
      throw new Img2PromptError(file, `cannot read gzipped BPE merges: ${errorMessage(err)}`, { cause: err });
    }
    const merges = mergeLines(text, file).slice(0, CLIP_MERGE_COUNT);
    if (merges.length !== CLIP_MERGE_COUNT) throw new Img2PromptError(file, `has ${merges.length} merges, CLIP needs ${CLIP_MERGE_COUNT}`);
    return ClipTokenizer.fromVocabAndMerges(clipVocabFromMerges(merges), merges, file, options);
  }

  static fromVocabAndMerges(
    vocab: Record<string, number>,
    merges: readonly string[],
    source: string,
    options: ClipTokenizerOptions = {},
  ): ClipTokenizer {
    for (const special of ['<|startoftext|>', '<|endoftext|>']) {
      if (!Number.isInteger(vocab[special])) throw new Img2PromptError(source, `vocabulary has no ${special} token`);
    }
    return ClipTokenizer.fromTokenizerJson(tokenizerJsonFor(vocab, merges), source, options);
  }

  static fromTokenizerJson(json: Record<string, unknown>, source: string, options: ClipTokenizerOptions = {}): ClipTokenizer {
    const contextLength = options.contextLength ?? CLIP_CONTEXT_LENGTH;
    if (!Number.isInteger(contextLength) || contextLength < 2) throw new Img2PromptError(source, `context length must be an integer >= 2, got ${contextLength}`);
    const tokenizer = loadHfTokenizer(json, {}, source);
    const id = (token: string): number => requireTokenId(tokenizer, token, source);
    const sot = id('<|startoftext|>');
    const eot = id('<|endoftext|>');
    if (sot !== CLIP_SOT_ID || eot !== CLIP_EOT_ID) {
      // The text graph pools at the largest id; a vocabulary with other special ids would break that.
      throw new Img2PromptError(source, `not the CLIP vocabulary: <|startoftext|>=${sot}, <|endoftext|>=${eot} (expected ${CLIP_SOT_ID}, ${CLIP_EOT_ID})`);
    }
    return new ClipTokenizer(tokenizer, source, contextLength, sot, eot);
  }

  /** Token ids of the cleaned text, without SOT/EOT and without truncation. */
  encodeBody(text: string): number[] {
    return this.tokenizer.encode(cleanClipText(text), { add_special_tokens: false }).ids;
  }

  /** [SOT] body [EOT], at most contextLength ids: a longer body is cut and EOT stays last (as open_clip). */
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

  /** Whether the whole text fits the context without truncation. */
  fits(text: string): boolean {
    return this.countTokens(text) <= this.contextLength;
  }

  /** BPE pieces of the cleaned text (no specials), e.g. ["a</w>", "photo</w>"]. */
  tokenize(text: string): string[] {
    return this.tokenizer.tokenize(cleanClipText(text));
  }

  /** Inverse of the vocabulary, for inspection. */
  idToToken(id: number): string | undefined {
    return this.tokenizer.id_to_token(id) ?? undefined;
  }

  tokenToId(token: string): number | undefined {
    return this.tokenizer.token_to_id(token) ?? undefined;
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

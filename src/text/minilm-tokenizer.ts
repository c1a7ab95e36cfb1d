import { loadHfTokenizer, requireTokenId } from './hf-tokenizer.js';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import type { Tokenizer } from '@huggingface/tokenizers';
import { readJsonObject } from '../util/json-file.js';
import { Img2PromptError, errorMessage } from '../util/errors.js';
import { sigmaAsMedial } from './lowercase.js';

/**
 * WordPiece tokenizer for all-MiniLM-L6-v2, set up the way sentence-transformers runs it in the Kaggle
 * metric: [CLS] text [SEP], truncated to max_seq_length (256, from sentence_bert_config.json) and
 * padded only to the longest sequence of each batch. The tokenizer.json shipped with the model bakes
 * in truncation 128 and fixed padding 128; tokenizers.js ignores both, and this class applies its own.
 *
 * sentence-transformers loads that folder with the fast (Rust) BertTokenizer, whose normalizer
 * lower-cases one character at a time: a word-final Σ becomes σ. tokenizers.js lower-cases the whole
 * string with toLowerCase (ς there), so capital sigmas are made medial before it sees the text.
 */

/** Bump when this tokenizer's output changes for some text, so cached MiniLM embeddings are rebuilt. */
export const MINILM_TOKENIZER_VERSION = 2;

/** sentence-transformers' max_seq_length for this model, used when sentence_bert_config.json is absent. */
export const MINILM_MAX_TOKENS = 256;

export interface TokenBatch {
  /** Row-major [batch, seqLen], padded with the pad id. */
  inputIds: BigInt64Array;
  /** Row-major [batch, seqLen]: 1 for real tokens, 0 for padding. */
  attentionMask: BigInt64Array;
  batch: number;
  seqLen: number;
}


async function exists(file: string): Promise<boolean> {
  return fs.access(file).then(() => true, () => false);
}

/** Whether a tokenizer.json normalizer lower-cases (BertNormalizer's `lowercase`, or a Lowercase step). */
function normalizerLowercases(normalizer: unknown): boolean {
  if (typeof normalizer !== 'object' || normalizer === null) return false;
  const n = normalizer as { type?: unknown; lowercase?: unknown; normalizers?: unknown };
  if (n.type === 'BertNormalizer') return n.lowercase !== false;
  if (n.type === 'Lowercase') return true;
  return n.type === 'Sequence' && Array.isArray(n.normalizers) && n.normalizers.some(normalizerLowercases);
}

export class MiniLMTokenizer {
  private constructor(
    private readonly tokenizer: Tokenizer,
    readonly maxTokens: number,
    readonly clsId: number,
    readonly sepId: number,
    readonly padId: number,
    private readonly lowercases: boolean,
    /** Names what this tokenizer does (version, truncation, tokenizer.json hash), for caches of embeddings. */
    readonly identity: string,
  ) {}

  /**
   * Load `<modelDir>/tokenizer.json` (+ tokenizer_config.json when present). The truncation length is
   * `maxTokens`, else max_seq_length from sentence_bert_config.json, else 256; it counts [CLS]/[SEP].
   */
  static async load(modelDir: string, options: { maxTokens?: number } = {}): Promise<MiniLMTokenizer> {
    const tokenizerPath = path.join(modelDir, 'tokenizer.json');
    const json = await readJsonObject(tokenizerPath);
    const configPath = path.join(modelDir, 'tokenizer_config.json');
    const config = (await exists(configPath)) ? await readJsonObject(configPath) : {};
    let maxTokens = options.maxTokens;
    if (maxTokens === undefined) {
      const stPath = path.join(modelDir, 'sentence_bert_config.json');
      const st = (await exists(stPath)) ? await readJsonObject(stPath) : {};
      const v = st.max_seq_length;
      if (v !== undefined && (!Number.isInteger(v) || (v as number) < 3)) {
        throw new Img2PromptError(stPath, `max_seq_length must be an integer >= 3, got ${JSON.stringify(v)}`, { code: 'FILE_INVALID' });
      }
      maxTokens = (v as number | undefined) ?? MINILM_MAX_TOKENS;
    }
    if (!Number.isInteger(maxTokens) || maxTokens < 3) throw new Img2PromptError(tokenizerPath, `maxTokens must be an integer >= 3, got ${maxTokens}`);
    const tokenizer = loadHfTokenizer(json, config, tokenizerPath);
    const id = (token: string): number => requireTokenId(tokenizer, token, tokenizerPath);
    const hash = createHash('sha256').update(JSON.stringify(json)).update(JSON.stringify(config)).digest('hex');
    const identity = `wordpiece/v${MINILM_TOKENIZER_VERSION}/max${maxTokens}/${hash.slice(0, 16)}`;
    return new MiniLMTokenizer(tokenizer, maxTokens, id('[CLS]'), id('[SEP]'), id('[PAD]'), normalizerLowercases(json.normalizer), identity);
  }

  /** The text as the Rust normalizer would lower-case it (see the file comment). */
  private prepare(text: string): string {
    return this.lowercases ? sigmaAsMedial(text) : text;
  }

  /** Token ids of one text: [CLS] … [SEP], at most maxTokens long. */
  encode(text: string): number[] {
    const body = this.tokenizer.encode(this.prepare(text), { add_special_tokens: false }).ids;
    // Same as HF's truncation of a single sequence: keep the head, leaving room for the two specials.
    const keep = Math.min(body.length, this.maxTokens - 2);
    const ids = new Array<number>(keep + 2);
    ids[0] = this.clsId;
    for (let i = 0; i < keep; i++) ids[i + 1] = body[i]!;
    ids[keep + 1] = this.sepId;
    return ids;
  }

  /** The word pieces of a text (no specials), for inspection. */
  tokenize(text: string): string[] {
    return this.tokenizer.tokenize(this.prepare(text));
  }

  /** Encode texts and pad them to the longest. */
  encodeBatch(texts: readonly string[]): TokenBatch {
    return this.pad(texts.map((t) => this.encode(t)));
  }

  /** Pad already-encoded sequences to the longest one (right padding, as the model was trained). */
  pad(seqs: readonly (readonly number[])[]): TokenBatch {
    const batch = seqs.length;
    const seqLen = seqs.reduce((m, s) => Math.max(m, s.length), 0);
    const inputIds = new BigInt64Array(batch * seqLen).fill(BigInt(this.padId));
    const attentionMask = new BigInt64Array(batch * seqLen);
    for (let r = 0; r < batch; r++) {
      const s = seqs[r]!;
      const base = r * seqLen;
      for (let i = 0; i < s.length; i++) {
        inputIds[base + i] = BigInt(s[i]!);
        attentionMask[base + i] = 1n;
      }
    }
    return { inputIds, attentionMask, batch, seqLen };
  }
}

import { createHash } from 'node:crypto';

/**
 * CLIP's byte-level BPE: a word's UTF-8 bytes, each written as one printable character, the last one
 * marked with "</w>", merged pair by pair in the order of the merge list. open_clip's SimpleTokenizer
 * and transformers' CLIPTokenizer agree on this part; they differ only in what they do to the text
 * before it (see tokenizer-kind.ts).
 */

/**
 * GPT-2's reversible byte → printable-character mapping, in the order CLIP's vocabulary lists the
 * bytes: printable Latin-1 bytes stand for themselves, the others for characters from U+0100 on.
 */
function byteLevelTable(): { byte: number; char: string }[] {
  const bytes: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bytes.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bytes.push(b);
  for (let b = 0xae; b <= 0xff; b++) bytes.push(b);
  const table = bytes.map((b) => ({ byte: b, char: String.fromCodePoint(b) }));
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    if (!bytes.includes(b)) table.push({ byte: b, char: String.fromCodePoint(256 + extra++) });
  }
  return table;
}

/** The 256 byte characters in vocabulary order. */
export function byteLevelAlphabet(): string[] {
  return byteLevelTable().map((e) => e.char);
}

/** Character standing for each byte value (index = byte). */
function byteCharTable(): string[] {
  const table = new Array<string>(256);
  for (const e of byteLevelTable()) table[e.byte] = e.char;
  return table;
}

/** Number of merges CLIP uses from its merge list (49408 − 256 bytes − 256 end-of-word bytes − 2 specials). */
export const CLIP_MERGE_COUNT = 49152 - 256 - 2;

export const CLIP_SOT_TOKEN = '<|startoftext|>';
export const CLIP_EOT_TOKEN = '<|endoftext|>';

/**
 * The vocabulary as open_clip builds it from a merge list: the 256 byte characters, the same with
 * "</w>", one token per merge, then the two specials (named as in the HF vocab.json).
 */
export function clipVocabFromMerges(merges: readonly string[]): Record<string, number> {
  const alphabet = byteLevelAlphabet();
  const tokens = [...alphabet, ...alphabet.map((c) => `${c}</w>`), ...merges.map((m) => m.replace(' ', '')), CLIP_SOT_TOKEN, CLIP_EOT_TOKEN];
  const vocab: Record<string, number> = {};
  tokens.forEach((t, i) => {
    vocab[t] = i;
  });
  return vocab;
}

/** Words whose ids are remembered; past this the memo starts over (label banks repeat few words). */
const MEMO_LIMIT = 200_000;

export class ClipBpe {
  private readonly ranks: Map<string, number>;
  private readonly ids: Map<string, number>;
  private readonly byteChars = byteCharTable();
  private readonly memo = new Map<string, number[]>();
  private readonly utf8 = new TextEncoder();
  /** sha256 of the vocabulary and merge list: two ClipBpe with the same hash give the same ids. */
  readonly hash: string;

  /** `merges`: "a b" lines in priority order; `vocab`: token → id. */
  constructor(vocab: Readonly<Record<string, number>>, merges: readonly string[]) {
    this.ranks = new Map(merges.map((m, i) => [m, i]));
    this.ids = new Map(Object.entries(vocab));
    const h = createHash('sha256');
    for (const [token, id] of [...this.ids].sort((a, b) => a[1] - b[1])) h.update(`${id}\t${token}\n`);
    h.update('--merges--\n');
    for (const m of merges) h.update(`${m}\n`);
    this.hash = h.digest('hex');
  }

  tokenId(token: string): number | undefined {
    return this.ids.get(token);
  }

  /** Ids of one pre-tokenized word (no whitespace inside), e.g. "photo" → [1125]. */
  encodeWord(word: string): number[] {
    const known = this.memo.get(word);
    if (known) return known;
    const ids = this.bpe(word).map((piece) => {
      const id = this.ids.get(piece);
      // Every byte and byte</w> is in a CLIP vocabulary, so a miss means a broken vocabulary file.
      if (id === undefined) throw new Error(`BPE piece "${piece}" is not in the vocabulary`);
      return id;
    });
    if (this.memo.size >= MEMO_LIMIT) this.memo.clear();
    this.memo.set(word, ids);
    return ids;
  }

  /** The BPE pieces of one word, e.g. "artstation" → ["art", "station</w>"]. */
  pieces(word: string): string[] {
    return this.bpe(word);
  }

  private bpe(word: string): string[] {
    const bytes = this.utf8.encode(word);
    if (bytes.length === 0) return [];
    let symbols = Array.from(bytes, (b) => this.byteChars[b]!);
    symbols[symbols.length - 1] += '</w>';
    for (;;) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i + 1 < symbols.length; i++) {
        const rank = this.ranks.get(`${symbols[i]} ${symbols[i + 1]}`);
        if (rank !== undefined && rank < bestRank) {
          bestRank = rank;
          best = i;
        }
      }
      if (best < 0) return symbols;
      // Merge every occurrence of the best pair, left to right, as the reference implementations do.
      const first = symbols[best]!;
      const second = symbols[best + 1]!;
      const merged: string[] = [];
      for (let i = 0; i < symbols.length; i++) {
        if (i + 1 < symbols.length && symbols[i] === first && symbols[i + 1] === second) {
          merged.push(first + second);
          i++;
        } else {
          merged.push(symbols[i]!);
        }
      }
      symbols = merged;
    }
  }
}

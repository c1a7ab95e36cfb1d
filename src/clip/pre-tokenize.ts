import { fixText } from '../text/fix-text.js';
import { unescapeHtml } from '../text/html-unescape.js';
import { lowercaseEachChar } from '../text/lowercase.js';

/**
 * What a CLIP tokenizer does to a text before BPE, in the two implementations CLIP checkpoints are
 * used with. Both end in the same split into words (letter runs, single digits, runs of other
 * symbols, English contractions) but clean the text differently:
 *
 * - open_clip's SimpleTokenizer: ftfy's `fix_text` (quotes, widths, ligatures, control characters,
 *   mojibake...; see text/fix-text.ts), HTML unescaped twice, whitespace collapsed, lower-cased with
 *   Python's `str.lower` (a final Σ becomes ς). Its special tokens are spelt `<start_of_text>` and
 *   `<end_of_text>` and are recognised anywhere in the cleaned text; `<|endoftext|>` is plain text
 *   to it. The split is case-insensitive, so "'ſ" counts as the contraction "'s".
 * - transformers' CLIPTokenizer: the special tokens `<|startoftext|>` / `<|endoftext|>` are cut out
 *   first (from the raw text, or from the normalized text for a token marked `normalized`), then
 *   each remaining part is put in NFC, whitespace runs become one space, and every character is
 *   lower-cased on its own (a final Σ becomes σ). No HTML unescaping, no other repair. Each word is
 *   then split again by GPT-2's pattern (its byte-level pre-tokenizer), which changes only the special
 *   token names that reached the word split: "<|endoftext|>" becomes "<|", "endoftext", "|>".
 */

export type ClipTokenizerKind = 'open_clip' | 'hf';

/** A word for BPE, or the id of a special token found in the text. */
export type ClipPiece = string | number;

/** An added (special) token of a transformers tokenizer. */
export interface AddedToken {
  content: string;
  id: number;
  /** Matched in the normalized text (lower-cased...) rather than in the raw text. */
  normalized: boolean;
}

/** Whitespace as Python's str.split / str.strip see it: Unicode White_Space plus the C0 separators U+001C–U+001F. */
const PY_WHITESPACE_RUN = /[\p{White_Space}\x1c-\x1f]+/gu;

/** open_clip's word pattern with its special-token names first, matched ignoring case. */
const OPEN_CLIP_WORDS = /<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\p{White_Space}\p{L}\p{N}]+/giu;

/** transformers' word pattern: its special-token names are kept whole here, then split by GPT2_WORDS. */
const HF_WORDS = /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\p{White_Space}\p{L}\p{N}]+/gu;

/** GPT-2's pattern, which HF's ByteLevel pre-tokenizer applies to each word. */
const GPT2_WORDS = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\p{White_Space}\p{L}\p{N}]+|\p{White_Space}+(?!\P{White_Space})|\p{White_Space}+/gu;

/** open_clip's `_clean_lower`: ftfy, HTML unescaped twice, whitespace collapsed and trimmed, lower-cased. */
export function openClipClean(text: string): string {
  const unescaped = unescapeHtml(unescapeHtml(fixText(text)));
  // Trim only the collapsed spaces: JS's trim() would also drop a U+FEFF that Python keeps.
  return unescaped.replace(PY_WHITESPACE_RUN, ' ').replace(/^ | $/g, '').toLowerCase();
}

/** open_clip's SimpleTokenizer.encode before BPE; `sot`/`eot` are the ids of its two special tokens. */
export function openClipPieces(text: string, sot: number, eot: number): ClipPiece[] {
  return (openClipClean(text).match(OPEN_CLIP_WORDS) ?? []).map((w) => (w === '<start_of_text>' ? sot : w === '<end_of_text>' ? eot : w));
}

/** transformers' CLIP normalizer: NFC, whitespace runs → one space, per-character lower case. */
export function hfNormalize(text: string): string {
  return lowercaseEachChar(text.normalize('NFC').replace(/\p{White_Space}+/gu, ' '));
}

/** Splits `text` on the exact strings of `tokens` (leftmost, longest first), keeping tokens as ids. */
function splitOnTokens(text: string, tokens: readonly AddedToken[]): ClipPiece[] {
  if (tokens.length === 0 || text === '') return text === '' ? [] : [text];
  const byLength = [...tokens].sort((a, b) => b.content.length - a.content.length);
  const out: ClipPiece[] = [];
  let start = 0;
  let i = 0;
  while (i < text.length) {
    const hit = byLength.find((t) => text.startsWith(t.content, i));
    if (!hit) {
      i++;
      continue;
    }
    if (i > start) out.push(text.slice(start, i));
    out.push(hit.id);
    i += hit.content.length;
    start = i;
  }
  if (start < text.length) out.push(text.slice(start));
  return out;
}

/** transformers' CLIPTokenizer before BPE, with the tokenizer's added tokens. */
export function hfPieces(text: string, added: readonly AddedToken[]): ClipPiece[] {
  const raw = added.filter((t) => !t.normalized);
  const normalized = added.filter((t) => t.normalized);
  const out: ClipPiece[] = [];
  for (const part of splitOnTokens(text, raw)) {
    if (typeof part === 'number') {
      out.push(part);
      continue;
    }
    for (const sub of splitOnTokens(hfNormalize(part), normalized)) {
      if (typeof sub === 'number') out.push(sub);
      else for (const word of sub.match(HF_WORDS) ?? []) out.push(...(word.match(GPT2_WORDS) ?? []));
    }
  }
  return out;
}

/**
 * transformers' logits processors that captioning uses, applied in transformers' order
 * (GenerationMixin._get_logits_processor): repetition penalty, then n-gram blocking, then the
 * minimum length. Each works on one row's scores (raw logits in greedy search, log-probabilities in
 * beam search, as transformers feeds them) given the row's tokens so far, prompt included.
 */

export interface ProcessorSettings {
  /** 1 = off. Seen tokens' scores: negative ones multiplied by it, others divided (RepetitionPenaltyLogitsProcessor). */
  repetitionPenalty: number;
  /** 0 = off. A token that would complete an n-gram already in the sequence is banned (NoRepeatNGramLogitsProcessor). */
  noRepeatNgramSize: number;
  /** Below this sequence length (prompt included) the end token is banned (MinLengthLogitsProcessor). */
  minLength: number;
  eosTokenId: number;
}

/** Applies the processors to `scores` (one row, length vocab) in place. */
export function processScores(scores: Float32Array, tokens: readonly number[], s: ProcessorSettings): void {
  if (s.repetitionPenalty !== 1) applyRepetitionPenalty(scores, tokens, s.repetitionPenalty);
  if (s.noRepeatNgramSize > 0) banRepeatedNgrams(scores, tokens, s.noRepeatNgramSize);
  if (tokens.length < s.minLength) scores[s.eosTokenId] = -Infinity;
}

function applyRepetitionPenalty(scores: Float32Array, tokens: readonly number[], penalty: number): void {
  // Each distinct token once, from its unpenalised score (transformers gathers, then scatters).
  for (const id of new Set(tokens)) {
    if (id >= scores.length) continue;
    const v = scores[id]!;
    scores[id] = v < 0 ? v * penalty : v / penalty;
  }
}

/**
 * Bans every token t for which (last n-1 tokens, t) already occurs in `tokens`. With fewer than n
 * tokens no n-gram is complete yet and nothing is banned.
 */
function banRepeatedNgrams(scores: Float32Array, tokens: readonly number[], n: number): void {
  const len = tokens.length;
  if (len < n) return;
  const prefixStart = len - (n - 1);
  for (let start = 0; start + n <= len; start++) {
    let match = true;
    for (let j = 0; j < n - 1; j++) {
      if (tokens[start + j] !== tokens[prefixStart + j]) {
        match = false;
        break;
      }
    }
    const banned = tokens[start + n - 1]!;
    if (match && banned < scores.length) scores[banned] = -Infinity;
  }
}

/** log_softmax of one row, rounded to float32 as transformers computes it. */
export function logSoftmaxInto(out: Float32Array, logits: Float32Array): void {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max);
  const shift = max + Math.log(sum);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i]! - shift;
}

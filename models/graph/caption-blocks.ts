import type { LayerNormWeights } from '../../src/clip/weights.js';
import type { BertAttentionWeights, DecoderLayerWeights, LinearWeights, TextDecoderWeights } from '../../src/caption/weights.js';
import type { TextDecoderConfig } from '../../src/caption/config.js';
import { GraphBuilder, dimOf, gelu, layerNorm, linear, softmax, splitHeads } from './onnx-builder.js';

/**
 * The pieces the captioners' BERT-style text decoders are built from, for step graphs with a
 * key/value cache (transformers' BertLayer maths, post-LN):
 *
 *   rows: the decoder runs N = images × G rows (G beams per image, 1 when greedy), image-major, as
 *     transformers lays out beams. Per-image tensors (BLIP's cross-attention keys/values, GIT's image
 *     prefix) are given once per image, [images, H, M, D], and each image's G rows attend to them
 *     together: their queries are regrouped into one [images, H, G·S, D] batch, so no per-row copy of
 *     an image's keys is ever made (the image is encoded once per image, not once per beam).
 *   past: the keys and values of the tokens already decoded, per row, [N, H, P, D]; a step appends
 *     its own S tokens and hands the whole [N, H, P+S, D] back as the next step's past.
 */

/** -1e4 underflows to exactly 0 after softmax's exp in float32, and never turns a row into NaN. */
const MASK_NEGATIVE = -1e4;

/** Additive causal bias of S new tokens after P cached ones: [S, P+S], 0 where key j ≤ P + i. */
export function causalBiasAfterPast(b: GraphBuilder, pastLen: string, seqLen: string): string {
  return b.scoped('causal_bias', () => {
    const total = b.op('Add', [pastLen, seqLen], {}, 'total');
    const scalar = (x: string) => b.op('Squeeze', [x, b.constInt64([0])]);
    const rows = b.op('Range', [scalar(pastLen), scalar(total), b.constInt64(1)], {}, 'query_positions');
    const cols = b.op('Range', [b.constInt64(0), scalar(total), b.constInt64(1)], {}, 'key_positions');
    const future = b.op('Greater', [cols, b.op('Unsqueeze', [rows, b.constInt64([1])])], {}, 'future');
    return b.op('Where', [future, b.constFloat(MASK_NEGATIVE), b.constFloat(0)], {}, 'bias');
  });
}

/**
 * Word embedding of `ids` plus positions [P, P+S), then the embeddings' LayerNorm: [N, S, W]. Also
 * returns the word embedding table's value name, for an LM head tied to it.
 */
export function embedAfterPast(b: GraphBuilder, t: TextDecoderConfig, w: TextDecoderWeights, ids: string, pastLen: string, seqLen: string): { hidden: string; table: string } {
  return b.scoped('embeddings', () => {
    const table = b.weight('word_embeddings', w.wordEmbeddings, [t.vocabSize, t.width]);
    const words = b.op('Gather', [table, ids], { axis: 0 }, 'words');
    const posTable = b.weight('position_embeddings', w.positionEmbeddings, [t.maxPositions, t.width]);
    const end = b.op('Add', [pastLen, seqLen], {}, 'end');
    const pos = b.op('Slice', [posTable, pastLen, end, b.constInt64([0])], {}, 'positions');
    const hidden = layerNorm(b, b.op('Add', [words, pos]), { ...w.embeddingsLn, epsilon: t.lnEps, name: 'LayerNorm' });
    return { hidden, table };
  });
}

function proj(b: GraphBuilder, x: string, w: LinearWeights, inF: number, outF: number, name: string): string {
  return linear(b, x, { weight: w.weight, bias: w.bias, inFeatures: inF, outFeatures: outF, name });
}

/** LayerNorm(dense(x) + residual): BERT's SelfOutput and Output. */
export function postLnOutput(b: GraphBuilder, x: string, residual: string, dense: LinearWeights, ln: LayerNormWeights, inF: number, outF: number, eps: number, name: string): string {
  return b.scoped(name, () => {
    const y = proj(b, x, dense, inF, outF, 'dense');
    return layerNorm(b, b.op('Add', [y, residual]), { ...ln, epsilon: eps, name: 'LayerNorm' });
  });
}

/** BERT's intermediate (dense + exact GELU) and output (dense + residual + LayerNorm). */
export function feedForward(b: GraphBuilder, t: TextDecoderConfig, x: string, w: DecoderLayerWeights): string {
  const up = proj(b, x, w.intermediate, t.width, t.intermediate, 'intermediate');
  return postLnOutput(b, gelu(b, up), x, w.output, w.outputLn, t.intermediate, t.width, t.lnEps, 'output');
}

/** [N, S, H·D] → [N, H, S, D] heads of a projection of `x`. */
export function projectHeads(b: GraphBuilder, x: string, w: LinearWeights, inF: number, t: TextDecoderConfig, name: string): string {
  return splitHeads(b, proj(b, x, w, inF, t.width, name), t.heads, t.width / t.heads, `${name}_heads`);
}

/** [N, H, S, D] → [N, S, H·D]. */
function mergeHeadsOf(b: GraphBuilder, x: string, width: number): string {
  return b.op('Reshape', [b.op('Transpose', [x], { perm: [0, 2, 1, 3] }), b.constInt64([0, 0, width])], {}, 'merge_heads');
}

/**
 * QKᵀ/√d as BERT computes it (the division after the product), in float32 whatever the graph's
 * precision: the masks are added and the softmax taken in float32 (see onnx-builder.ts).
 */
function scores(b: GraphBuilder, q: string, k: string, headDim: number, name: string): string {
  const kT = b.op('Transpose', [k], { perm: [0, 1, 3, 2] });
  return b.op('Div', [b.toFloat32(b.op('MatMul', [q, kT]), `${name}_float32`), b.constFloat(Math.sqrt(headDim))], {}, name);
}

/** Softmax over float32 scores, handed back in the graph's activation type for the product with the values. */
function probabilities(b: GraphBuilder, scoresFloat32: string): string {
  return b.toActivations(softmax(b, scoresFloat32, -1), 'probs');
}

/** A trailing dimension: a fixed size, or an int64 [1] value computed in the graph. */
type LastDim = number | string;

function lastDim(b: GraphBuilder, last: LastDim): string {
  return typeof last === 'number' ? b.constInt64([last]) : last;
}

/**
 * Rows regrouped by image: [N, H, S, X] → [images, H, G·S, X] (N = images × G, rows image-major), so
 * that one MatMul against per-image [images, H, M, X] tensors serves all of an image's rows.
 */
export function groupRows(b: GraphBuilder, x: string, images: string, heads: number, seqLen: string, last: LastDim): string {
  return b.scoped('group_rows', () => {
    const x5 = b.op('Reshape', [x, b.op('Concat', [images, b.constInt64([-1, heads]), seqLen, lastDim(b, last)], { axis: 0 })]);
    const byImage = b.op('Transpose', [x5], { perm: [0, 2, 1, 3, 4] });
    return b.op('Reshape', [byImage, b.op('Concat', [images, b.constInt64([heads, -1]), lastDim(b, last)], { axis: 0 })]);
  });
}

/** The inverse of groupRows: [images, H, G·S, X] → [N, H, S, X]. */
export function ungroupRows(b: GraphBuilder, x: string, images: string, heads: number, seqLen: string, last: LastDim): string {
  return b.scoped('ungroup_rows', () => {
    const x5 = b.op('Reshape', [x, b.op('Concat', [images, b.constInt64([heads, -1]), seqLen, lastDim(b, last)], { axis: 0 })]);
    const byRow = b.op('Transpose', [x5], { perm: [0, 2, 1, 3, 4] });
    return b.op('Reshape', [byRow, b.op('Concat', [b.constInt64([-1, heads]), seqLen, lastDim(b, last)], { axis: 0 })]);
  });
}

export interface PastKeysValues {
  key: string;
  value: string;
}

/** Keys/values of the new tokens appended to the past: the step's present, [N, H, P+S, D]. */
function appendToPast(b: GraphBuilder, past: PastKeysValues, k: string, v: string): PastKeysValues {
  return {
    key: b.op('Concat', [past.key, k], { axis: 2 }, 'present_key'),
    value: b.op('Concat', [past.value, v], { axis: 2 }, 'present_value'),
  };
}

export interface SelfAttentionStep {
  out: string;
  present: PastKeysValues;
}

/**
 * BERT self-attention sublayer of S new tokens over the past and themselves (causal), with an
 * optional per-image prefix every token also sees (GIT's image tokens): one softmax over
 * [prefix | past + new]. Returns LayerNorm(dense(context) + x) and the present keys/values.
 */
export function selfAttentionStep(
  b: GraphBuilder,
  t: TextDecoderConfig,
  x: string,
  w: BertAttentionWeights,
  o: { past: PastKeysValues; causalBias: string; seqLen: string; prefix?: { key: string; value: string; images: string } },
): SelfAttentionStep {
  const D = t.width / t.heads;
  return b.scoped('attention', () => {
    const q = projectHeads(b, x, w.query, t.width, t, 'query');
    const k = projectHeads(b, x, w.key, t.width, t, 'key');
    const v = projectHeads(b, x, w.value, t.width, t, 'value');
    const present = appendToPast(b, o.past, k, v);
    const own = b.op('Add', [scores(b, q, present.key, D, 'own_scores'), o.causalBias]);
    let context: string;
    if (!o.prefix) {
      context = b.op('MatMul', [probabilities(b, own), present.value], {}, 'context');
    } else {
      const { images } = o.prefix;
      const prefixLen = dimOf(b, o.prefix.key, 2, 'prefix_len');
      const grouped = groupRows(b, q, images, t.heads, o.seqLen, D);
      const prefixScores = ungroupRows(b, scores(b, grouped, o.prefix.key, D, 'prefix_scores'), images, t.heads, o.seqLen, prefixLen);
      const probs = probabilities(b, b.op('Concat', [prefixScores, own], { axis: -1 }));
      const sizes = b.op('Concat', [prefixLen, dimOf(b, present.key, 2, 'own_len')], { axis: 0 });
      const [prefixProbs, ownProbs] = b.node('Split', [probs, sizes], { axis: -1 }, { outputs: 2, name: 'split_probs' }) as [string, string];
      const fromPrefix = ungroupRows(b, b.op('MatMul', [groupRows(b, prefixProbs, images, t.heads, o.seqLen, prefixLen), o.prefix.value]), images, t.heads, o.seqLen, D);
      context = b.op('Add', [fromPrefix, b.op('MatMul', [ownProbs, present.value])], {}, 'context');
    }
    const out = postLnOutput(b, mergeHeadsOf(b, context, t.width), x, w.output, w.ln, t.width, t.width, t.lnEps, 'output');
    return { out, present };
  });
}

/**
 * BERT cross-attention sublayer (BLIP): the rows of each image attend, unmasked, to that image's
 * keys and values [images, H, M, D], given once per image.
 */
export function crossAttentionStep(
  b: GraphBuilder,
  t: TextDecoderConfig,
  x: string,
  w: BertAttentionWeights,
  o: { key: string; value: string; images: string; seqLen: string },
): string {
  const D = t.width / t.heads;
  return b.scoped('crossattention', () => {
    const q = groupRows(b, projectHeads(b, x, w.query, t.width, t, 'query'), o.images, t.heads, o.seqLen, D);
    const probs = probabilities(b, scores(b, q, o.key, D, 'scores'));
    const context = ungroupRows(b, b.op('MatMul', [probs, o.value]), o.images, t.heads, o.seqLen, D);
    return postLnOutput(b, mergeHeadsOf(b, context, t.width), x, w.output, w.ln, t.width, t.width, t.lnEps, 'output');
  });
}

/** The hidden state of each row's last token, [N, S, W] → [N, W]: only it predicts the next token. */
export function lastPosition(b: GraphBuilder, h: string, seqLen: string): string {
  return b.scoped('last_position', () => {
    const last = b.op('Sub', [seqLen, b.constInt64([1])]);
    return b.op('Squeeze', [b.op('Gather', [h, last], { axis: 1 }), b.constInt64([1])]);
  });
}

/** Graph inputs for every layer's past keys/values, [rows, H, past, D]. */
export function pastInputs(b: GraphBuilder, t: TextDecoderConfig): PastKeysValues[] {
  const D = t.width / t.heads;
  return Array.from({ length: t.layers }, (_, i) => ({
    key: b.input(`past_key_${i}`, b.activationType, ['rows', t.heads, 'past', D]),
    value: b.input(`past_value_${i}`, b.activationType, ['rows', t.heads, 'past', D]),
  }));
}

/** Declare a layer's present keys/values as outputs (the next step's past). */
export function presentOutputs(b: GraphBuilder, t: TextDecoderConfig, i: number, present: PastKeysValues): void {
  const D = t.width / t.heads;
  b.output(present.key, `present_key_${i}`, b.activationType, ['rows', t.heads, 'total', D]);
  b.output(present.value, `present_value_${i}`, b.activationType, ['rows', t.heads, 'total', D]);
}

/**
 * BERT self-attention sublayer over a whole sequence without a mask (GIT's image tokens among
 * themselves): LayerNorm(dense(context) + x), plus the sequence's keys and values [N, H, S, D].
 */
export function bidirectionalAttention(b: GraphBuilder, t: TextDecoderConfig, x: string, w: BertAttentionWeights): { out: string } & PastKeysValues {
  const D = t.width / t.heads;
  return b.scoped('attention', () => {
    const q = projectHeads(b, x, w.query, t.width, t, 'query');
    const key = projectHeads(b, x, w.key, t.width, t, 'key');
    const value = projectHeads(b, x, w.value, t.width, t, 'value');
    const context = b.op('MatMul', [probabilities(b, scores(b, q, key, D, 'scores')), value], {}, 'context');
    const out = postLnOutput(b, mergeHeadsOf(b, context, t.width), x, w.output, w.ln, t.width, t.width, t.lnEps, 'output');
    return { out, key, value };
  });
}

/** Keys and values of a sequence under a layer's self-attention projections, without the attention itself. */
export function keysValues(b: GraphBuilder, t: TextDecoderConfig, x: string, w: BertAttentionWeights): PastKeysValues {
  return b.scoped('attention', () => ({
    key: projectHeads(b, x, w.key, t.width, t, 'key'),
    value: projectHeads(b, x, w.value, t.width, t, 'value'),
  }));
}

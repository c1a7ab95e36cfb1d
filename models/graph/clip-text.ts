import type { ClipConfig } from '../../src/clip/config.js';
import type { ClipWeights } from '../../src/clip/weights.js';
import type { Precision } from '../../src/runtime/precision.js';
import { GraphBuilder, causalMaskBias, dimOf, l2Normalize, layerNorm, onnxDataType } from './onnx-builder.js';
import { assertFitsProtobuf, preLnResidualBlock, preLnResidualBlockWithKeys } from './transformer-blocks.js';

/**
 * CLIP's text tower as an ONNX graph:
 *
 *   input_ids int64 [batch, seq], seq ≤ context length (77), right-padded with any pad id
 *   → token embedding + the first `seq` rows of the positional embedding
 *   → pre-LN residual blocks under a causal mask (sliced in-graph to [seq, seq])
 *   → the state at the EOT position → ln_final → @ text_projection
 *   → text_embeds_raw [batch, embed] and text_embeds (L2-normalised).
 *
 * Because attention is causal and pooling reads the EOT position, tokens after the EOT (padding)
 * never reach the output: a batch may be padded to its own longest sequence instead of 77.
 *
 * EOT position: 'argmax' takes the largest id (open_clip; ties resolve to the first, as in torch),
 * 'first-eot' the first id equal to the EOT id (HF with a real eos_token_id). In the CLIP vocabulary
 * the EOT 49407 is the largest id, so both pick the same position for every tokenized text, with
 * either padding convention (0 or 49407). ln_final is per token, so it is applied after pooling.
 */

/** Bump when the graph changes, so cached .onnx files get rebuilt. */
export const CLIP_TEXT_GRAPH_VERSION = 1;

/**
 * Large enough that exp() underflows to exactly 0 in float32 after softmax's max subtraction, yet
 * finite (also in float16), so a masked row can never become NaN.
 */
const MASK_NEGATIVE = -1e4;

/**
 * In fp16 the blocks run in half precision; the pooled EOT state is cast to float32 before ln_final, so
 * the projection and the normalisation run in float32, and the causal mask is float32, added to
 * float32 scores (see onnx-builder.ts). The prefix-cached graph below is built in fp32 only.
 */
export function clipTextGraphBuilder(config: ClipConfig, weights: Pick<ClipWeights, 'text'>, precision: Precision = 'fp32'): GraphBuilder {
  const b = new GraphBuilder('clip_text', {
    producerName: 'img2prompt',
    producerVersion: `clip-text-graph-${CLIP_TEXT_GRAPH_VERSION}`,
    docString: 'CLIP text tower: input_ids → text_embeds (unit length) and text_embeds_raw',
    precision,
  });
  const ids = b.input('input_ids', 'int64', ['batch', 'sequence']);
  const seqLen = dimOf(b, ids, 1, 'seq_len');
  let x = tokenEmbeddings(b, config, weights, ids, undefined, seqLen);
  const mask = causalMask(b, config, seqLen);
  weights.text.blocks.forEach((blk, i) => {
    x = preLnResidualBlock(b, x, blk, blockOptions(config, mask, i));
  });
  pooledOutputs(b, config, weights, x, ids);
  return b;
}

/** Bump when the prefix-cached graph changes. */
export const CLIP_TEXT_PREFIX_GRAPH_VERSION = 1;

/**
 * CLIP's text tower continuing a shared prefix: the same weights and maths as `clipTextGraphBuilder`,
 * for the tokens that follow P earlier ones whose keys and values are given.
 *
 *   input_ids int64 [batch, sequence]: the tokens after the prefix (ending with the EOT), right-padded
 *   past_key_<i>, past_value_<i> float32 [1, heads, past, head_dim]: the prefix, shared by every row
 *   → text_embeds [batch, embed] (unit length) and text_embeds_raw, as the full tower gives for
 *     prefix + input_ids
 *   → present_key_<i>, present_value_<i> [batch, heads, sequence, head_dim]: the keys and values of
 *     input_ids themselves, so a call with an empty past (P = 0) on a prefix gives that prefix's cache.
 *
 * Why it is exact: attention is causal, so the hidden states of the prefix positions do not depend on
 * what follows them; only the positional embeddings (rows P.. of the table) and the attention of the
 * new tokens over the prefix need the prefix at all. The EOT is in input_ids (a prefix never ends a
 * text), so pooling reads a new-token position. A greedy chain scores hundreds of "prompt, candidate"
 * texts per step that share the prompt's tokens: it runs the prompt once and only the candidates'
 * few tokens per row.
 */
export function clipTextPrefixGraphBuilder(config: ClipConfig, weights: Pick<ClipWeights, 'text'>): GraphBuilder {
  const t = config.text;
  const headDim = t.width / t.heads;
  const b = new GraphBuilder('clip_text_prefix', {
    producerName: 'img2prompt',
    producerVersion: `clip-text-prefix-graph-${CLIP_TEXT_PREFIX_GRAPH_VERSION}`,
    docString: 'CLIP text tower after a cached prefix: input_ids + past keys/values → text_embeds and present keys/values',
  });
  const ids = b.input('input_ids', 'int64', ['batch', 'sequence']);
  const pasts = weights.text.blocks.map((_, i) => ({
    key: b.input(`past_key_${i}`, 'float32', [1, t.heads, 'past', headDim]),
    value: b.input(`past_value_${i}`, 'float32', [1, t.heads, 'past', headDim]),
  }));
  const seqLen = dimOf(b, ids, 1, 'seq_len');
  const pastLen = dimOf(b, pasts[0]!.key, 2, 'past_len');
  let x = tokenEmbeddings(b, config, weights, ids, pastLen, b.op('Add', [pastLen, seqLen], {}, 'end_position'));
  // The causal bias is the same for any offset: new token i sees new tokens 0..i (and the whole past).
  const mask = causalMask(b, config, seqLen);
  weights.text.blocks.forEach((blk, i) => {
    const out = preLnResidualBlockWithKeys(b, x, blk, { ...blockOptions(config, mask, i), past: pasts[i] });
    x = out.out;
    b.output(out.key, `present_key_${i}`, 'float32', ['batch', t.heads, 'sequence', headDim]);
    b.output(out.value, `present_value_${i}`, 'float32', ['batch', t.heads, 'sequence', headDim]);
  });
  pooledOutputs(b, config, weights, x, ids);
  return b;
}

/** Token embedding of `ids` plus rows [from, to) of the positional table (from 0 when `from` is undefined). */
function tokenEmbeddings(b: GraphBuilder, config: ClipConfig, weights: Pick<ClipWeights, 'text'>, ids: string, from: string | undefined, to: string): string {
  const t = config.text;
  const w = weights.text;
  return b.scoped('embeddings', () => {
    const table = b.weight('token_embedding', w.tokenEmbedding, [t.vocabSize, t.width]);
    const tok = b.op('Gather', [table, ids], { axis: 0 }, 'tokens');
    const posTable = b.weight('positional_embedding', w.positionalEmbedding, [t.contextLength, t.width]);
    const pos = b.op('Slice', [posTable, from ?? b.constInt64([0]), to, b.constInt64([0])], {}, 'positions');
    return b.op('Add', [tok, pos], {}, 'add_positions');
  });
}

/** The causal bias [1, 1, seq, seq], sliced in-graph from the context-length one. */
function causalMask(b: GraphBuilder, config: ClipConfig, seqLen: string): string {
  return b.scoped('causal_mask', () => {
    const full = causalMaskBias(b, config.text.contextLength, MASK_NEGATIVE, 'full');
    const ends = b.op('Concat', [seqLen, seqLen], { axis: 0 }, 'ends');
    return b.op('Slice', [full, b.constInt64([0, 0]), ends, b.constInt64([2, 3])], {}, 'slice');
  });
}

function blockOptions(config: ClipConfig, mask: string, i: number) {
  const t = config.text;
  return { width: t.width, heads: t.heads, intermediate: t.intermediate, act: t.act, lnEps: t.lnEps, attentionBias: mask, name: `resblocks.${i}` };
}

/** EOT pooling, ln_final and the projection → outputs text_embeds (unit) and text_embeds_raw. */
function pooledOutputs(b: GraphBuilder, config: ClipConfig, weights: Pick<ClipWeights, 'text'>, x: string, ids: string): void {
  const t = config.text;
  const w = weights.text;
  const eotIndex = b.scoped('eot_position', () => {
    // ArgMax over int32: ids fit, and int32 is a type every ArgMax kernel takes.
    const key =
      t.eotPooling === 'argmax'
        ? b.op('Cast', [ids], { to: onnxDataType('int32') })
        : b.op('Cast', [b.op('Equal', [ids, b.constInt64(t.eotTokenId)])], { to: onnxDataType('int32') });
    return b.op('ArgMax', [key], { axis: 1, keepdims: 1, select_last_index: 0 });
  });
  const pooled = b.toFloat32(b.op('GatherND', [x, eotIndex], { batch_dims: 1 }, 'eot_token'), 'eot_token_float32');
  const [raw, unit] = b.withActivations('float32', () => {
    const normed = layerNorm(b, pooled, { ...w.lnFinal, epsilon: t.lnEps, name: 'ln_final' });
    const proj = b.weight('text_projection', w.projection, [t.width, config.embedDim]);
    const projected = b.op('MatMul', [normed, proj], {}, 'project');
    return [projected, l2Normalize(b, projected)];
  });
  b.output(unit, 'text_embeds', 'float32', ['batch', config.embedDim]);
  b.output(raw, 'text_embeds_raw', 'float32', ['batch', config.embedDim]);
}

/** The graph as one protobuf (weights inline); models over 2 GiB need `clipTextGraphBuilder(...).writeModel(file)`. */
export function buildClipTextGraph(config: ClipConfig, weights: Pick<ClipWeights, 'text'>, precision: Precision = 'fp32'): Uint8Array {
  const b = clipTextGraphBuilder(config, weights, precision);
  assertFitsProtobuf(b, 'CLIP text graph');
  return b.toBytes();
}

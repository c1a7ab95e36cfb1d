import type { ClipConfig } from '../../src/clip/config.js';
import type { ClipWeights } from '../../src/clip/weights.js';
import { GraphBuilder, causalMaskBias, dimOf, l2Normalize, layerNorm, onnxDataType } from './onnx-builder.js';
import { assertFitsProtobuf, preLnResidualBlock } from './transformer-blocks.js';

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

export function clipTextGraphBuilder(config: ClipConfig, weights: Pick<ClipWeights, 'text'>): GraphBuilder {
  const t = config.text;
  const w = weights.text;
  const W = t.width;
  const b = new GraphBuilder('clip_text', {
    producerName: 'img2prompt',
    producerVersion: `clip-text-graph-${CLIP_TEXT_GRAPH_VERSION}`,
    docString: 'CLIP text tower: input_ids → text_embeds (unit length) and text_embeds_raw',
  });
  const ids = b.input('input_ids', 'int64', ['batch', 'sequence']);
  const seqLen = dimOf(b, ids, 1, 'seq_len');

  let x = b.scoped('embeddings', () => {
    const table = b.initializer('token_embedding', w.tokenEmbedding, [t.vocabSize, W]);
    const tok = b.op('Gather', [table, ids], { axis: 0 }, 'tokens');
    const posTable = b.initializer('positional_embedding', w.positionalEmbedding, [t.contextLength, W]);
    const pos = b.op('Slice', [posTable, b.constInt64([0]), seqLen, b.constInt64([0])], {}, 'positions');
    return b.op('Add', [tok, pos], {}, 'add_positions');
  });

  const mask = b.scoped('causal_mask', () => {
    const full = causalMaskBias(b, t.contextLength, MASK_NEGATIVE, 'full');
    const ends = b.op('Concat', [seqLen, seqLen], { axis: 0 }, 'ends');
    return b.op('Slice', [full, b.constInt64([0, 0]), ends, b.constInt64([2, 3])], {}, 'slice');
  });

  w.blocks.forEach((blk, i) => {
    x = preLnResidualBlock(b, x, blk, {
      width: W,
      heads: t.heads,
      intermediate: t.intermediate,
      act: t.act,
      lnEps: t.lnEps,
      attentionBias: mask,
      name: `resblocks.${i}`,
    });
  });

  const eotIndex = b.scoped('eot_position', () => {
    // ArgMax over int32: ids fit, and int32 is a type every ArgMax kernel takes.
    const key =
      t.eotPooling === 'argmax'
        ? b.op('Cast', [ids], { to: onnxDataType('int32') })
        : b.op('Cast', [b.op('Equal', [ids, b.constInt64(t.eotTokenId)])], { to: onnxDataType('int32') });
    return b.op('ArgMax', [key], { axis: 1, keepdims: 1, select_last_index: 0 });
  });
  const pooled = b.op('GatherND', [x, eotIndex], { batch_dims: 1 }, 'eot_token');
  const normed = layerNorm(b, pooled, { ...w.lnFinal, epsilon: t.lnEps, name: 'ln_final' });
  const proj = b.initializer('text_projection', w.projection, [W, config.embedDim]);
  const raw = b.op('MatMul', [normed, proj], {}, 'project');
  const unit = l2Normalize(b, raw);
  b.output(unit, 'text_embeds', 'float32', ['batch', config.embedDim]);
  b.output(raw, 'text_embeds_raw', 'float32', ['batch', config.embedDim]);
  return b;
}

/** The graph as one protobuf (weights inline); models over 2 GiB need `clipTextGraphBuilder(...).writeModel(file)`. */
export function buildClipTextGraph(config: ClipConfig, weights: Pick<ClipWeights, 'text'>): Uint8Array {
  const b = clipTextGraphBuilder(config, weights);
  assertFitsProtobuf(b, 'CLIP text graph');
  return b.toBytes();
}

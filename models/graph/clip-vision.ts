import { visionTokenCount, type ClipConfig } from '../../src/clip/config.js';
import type { ClipWeights } from '../../src/clip/weights.js';
import type { Precision } from '../../src/runtime/precision.js';
import { GraphBuilder, dimOf, l2Normalize, layerNorm } from './onnx-builder.js';
import { assertFitsProtobuf, preLnResidualBlock } from './transformer-blocks.js';

/**
 * CLIP's image tower as an ONNX graph:
 *
 *   pixel_values [batch, 3, N, N] (already resized, cropped and normalised with the config's mean/std)
 *   → patch embedding (Conv, kernel = stride = patch, no bias) → [batch, grid², W]
 *   → prepend the class embedding, add the positional embedding → ln_pre
 *   → pre-LN residual blocks → ln_post on the class token → @ proj
 *   → image_embeds_raw [batch, embed] and image_embeds (L2-normalised).
 *
 * In fp16 the pixels are cast to half on entry and the class token back to float32 before ln_post,
 * so the projection and the normalisation run in float32; inputs and outputs stay float32.
 */

/** Bump when the graph changes, so cached .onnx files get rebuilt. */
export const CLIP_VISION_GRAPH_VERSION = 1;

export function clipVisionGraphBuilder(config: ClipConfig, weights: Pick<ClipWeights, 'vision'>, precision: Precision = 'fp32'): GraphBuilder {
  const v = config.vision;
  const w = weights.vision;
  const W = v.width;
  const P = v.patchSize;
  const tokens = visionTokenCount(v);
  const b = new GraphBuilder('clip_vision', {
    producerName: 'img2prompt',
    producerVersion: `clip-vision-graph-${CLIP_VISION_GRAPH_VERSION}`,
    docString: 'CLIP image tower: pixel_values → image_embeds (unit length) and image_embeds_raw',
    precision,
  });
  const pixels = b.input('pixel_values', 'float32', ['batch', 3, v.imageSize, v.imageSize]);

  let x = b.scoped('embeddings', () => {
    const kernel = b.weight('conv1.weight', w.patchWeight, [W, 3, P, P]);
    const patches = b.op('Conv', [b.toActivations(pixels, 'pixels'), kernel], { kernel_shape: [P, P], strides: [P, P] }, 'conv1');
    // [B, W, g, g] → [B, W, g²] → [B, g², W]; patches in row-major order, as the position table expects.
    const flat = b.op('Reshape', [patches, b.constInt64([0, W, -1])], {}, 'flatten');
    const seq = b.op('Transpose', [flat], { perm: [0, 2, 1] }, 'to_tokens');
    const cls = b.weight('class_embedding', w.classEmbedding, [1, 1, W]);
    const clsShape = b.op('Concat', [dimOf(b, pixels, 0, 'batch'), b.constInt64([1, W])], { axis: 0 }, 'class_shape');
    const clsBatch = b.op('Expand', [cls, clsShape], {}, 'class_tokens');
    const withCls = b.op('Concat', [clsBatch, seq], { axis: 1 }, 'prepend_class');
    const pos = b.weight('positional_embedding', w.positionalEmbedding, [tokens, W]);
    return b.op('Add', [withCls, pos], {}, 'add_positions');
  });
  x = layerNorm(b, x, { ...w.lnPre, epsilon: v.lnEps, name: 'ln_pre' });
  w.blocks.forEach((blk, i) => {
    x = preLnResidualBlock(b, x, blk, { width: W, heads: v.heads, intermediate: v.intermediate, act: v.act, lnEps: v.lnEps, name: `resblocks.${i}` });
  });
  const cls = b.toFloat32(b.op('Gather', [x, b.constInt64(0)], { axis: 1 }, 'class_token'), 'class_token_float32');
  const [raw, unit] = b.withActivations('float32', () => {
    const pooled = layerNorm(b, cls, { ...w.lnPost, epsilon: v.lnEps, name: 'ln_post' });
    const proj = b.weight('proj', w.projection, [W, config.embedDim]);
    const projected = b.op('MatMul', [pooled, proj], {}, 'project');
    return [projected, l2Normalize(b, projected)];
  });
  b.output(unit, 'image_embeds', 'float32', ['batch', config.embedDim]);
  b.output(raw, 'image_embeds_raw', 'float32', ['batch', config.embedDim]);
  return b;
}

/** The graph as one protobuf (weights inline); models over 2 GiB need `clipVisionGraphBuilder(...).writeModel(file)`. */
export function buildClipVisionGraph(config: ClipConfig, weights: Pick<ClipWeights, 'vision'>, precision: Precision = 'fp32'): Uint8Array {
  const b = clipVisionGraphBuilder(config, weights, precision);
  assertFitsProtobuf(b, 'CLIP vision graph');
  return b.toBytes();
}

import { imageTokenCount, type VitConfig } from '../../src/caption/config.js';
import type { VitWeights } from '../../src/caption/weights.js';
import { GraphBuilder, dimOf, layerNorm } from './onnx-builder.js';
import { preLnResidualBlock } from './transformer-blocks.js';

/**
 * A ViT returning every token's final hidden state, as the captioners' image encoders use it
 * (`pixels` and the result in the builder's activation type):
 *
 *   pixel_values [batch, 3, N, N] → patch convolution (+ bias when the weights have one) → [batch, grid², W]
 *   → class token prepended, position embedding added → pre-LN (CLIP's ln_pre, when present)
 *   → pre-LN residual blocks → post-LN on every token → [batch, 1 + grid², W].
 */
export function vitHiddenStates(b: GraphBuilder, pixels: string, v: VitConfig, w: VitWeights): string {
  const W = v.width;
  const P = v.patchSize;
  let x = b.scoped('embeddings', () => {
    const kernel = b.weight('patch_embedding.weight', w.patchWeight, [W, 3, P, P]);
    const convInputs = [pixels, kernel];
    if (w.patchBias) convInputs.push(b.weight('patch_embedding.bias', w.patchBias, [W]));
    const patches = b.op('Conv', convInputs, { kernel_shape: [P, P], strides: [P, P] }, 'patch_embedding');
    // [B, W, g, g] → [B, W, g²] → [B, g², W]: patches in row-major order, as the position table expects.
    const seq = b.op('Transpose', [b.op('Reshape', [patches, b.constInt64([0, W, -1])], {}, 'flatten')], { perm: [0, 2, 1] }, 'to_tokens');
    const cls = b.weight('class_embedding', w.classEmbedding, [1, 1, W]);
    const clsShape = b.op('Concat', [dimOf(b, pixels, 0, 'batch'), b.constInt64([1, W])], { axis: 0 }, 'class_shape');
    const withCls = b.op('Concat', [b.op('Expand', [cls, clsShape], {}, 'class_tokens'), seq], { axis: 1 }, 'prepend_class');
    const pos = b.weight('position_embedding', w.positionEmbedding, [imageTokenCount(v), W]);
    return b.op('Add', [withCls, pos], {}, 'add_positions');
  });
  if (w.preLn) x = layerNorm(b, x, { ...w.preLn, epsilon: v.lnEps, name: 'pre_layernorm' });
  w.blocks.forEach((blk, i) => {
    x = preLnResidualBlock(b, x, blk, { width: W, heads: v.heads, intermediate: v.intermediate, act: v.act, lnEps: v.lnEps, name: `layers.${i}` });
  });
  return layerNorm(b, x, { ...w.postLn, epsilon: v.lnEps, name: 'post_layernorm' });
}

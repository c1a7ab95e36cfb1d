import { Img2PromptError } from '../../src/util/errors.js';
import { GraphBuilder, attention, gelu, layerNorm, linear, mergeHeads, quickGelu, splitHeads } from './onnx-builder.js';

/**
 * The pre-LN residual block of CLIP's towers (OpenAI CLIP / open_clip `ResidualAttentionBlock`,
 * HF `CLIPEncoderLayer`), on top of the generic layer helpers:
 *
 *   x = x + out_proj(MHA(ln_1(x)))      with q, k, v from one packed in-projection
 *   x = x + c_proj(act(c_fc(ln_2(x))))
 */

export type BlockActivation = 'quick_gelu' | 'gelu';

export interface PackedBlockWeights {
  ln1: { weight: Float32Array; bias: Float32Array };
  /** [3W, W] (PyTorch layout), rows ordered q, k, v. */
  qkvWeight: Float32Array;
  qkvBias: Float32Array;
  outWeight: Float32Array;
  outBias: Float32Array;
  ln2: { weight: Float32Array; bias: Float32Array };
  fcWeight: Float32Array;
  fcBias: Float32Array;
  projWeight: Float32Array;
  projBias: Float32Array;
}

export interface PreLnBlockOptions {
  width: number;
  heads: number;
  intermediate: number;
  act: BlockActivation;
  lnEps: number;
  /** Additive attention bias broadcastable to [B, H, S, S] (the causal mask of the text tower). */
  attentionBias?: string;
  name?: string;
}

/** Activation by name. */
export function activation(b: GraphBuilder, x: string, act: BlockActivation): string {
  return act === 'quick_gelu' ? quickGelu(b, x) : gelu(b, x);
}

/**
 * Multi-head self-attention with a packed q/k/v projection: one [W, 3W] MatMul, split into three.
 * The 1/√d scale goes on q before QKᵀ, as both open_clip and HF CLIP do it.
 */
export function packedSelfAttention(
  b: GraphBuilder,
  x: string,
  w: Pick<PackedBlockWeights, 'qkvWeight' | 'qkvBias' | 'outWeight' | 'outBias'>,
  o: { width: number; heads: number; bias?: string; name?: string },
): string {
  const headDim = o.width / o.heads;
  if (!Number.isInteger(headDim)) throw new Error(`packedSelfAttention: width ${o.width} is not divisible by ${o.heads} heads`);
  return b.scoped(o.name ?? 'attn', () => {
    const qkv = linear(b, x, { weight: w.qkvWeight, bias: w.qkvBias, inFeatures: o.width, outFeatures: 3 * o.width, name: 'in_proj' });
    // Opset 17 Split without sizes cuts the axis into equal parts.
    const [q, k, v] = b.node('Split', [qkv], { axis: -1 }, { outputs: 3, name: 'split_qkv' }) as [string, string, string];
    const ctx = attention(
      b,
      splitHeads(b, q, o.heads, headDim, 'q_heads'),
      splitHeads(b, k, o.heads, headDim, 'k_heads'),
      splitHeads(b, v, o.heads, headDim, 'v_heads'),
      { headDim, bias: o.bias, scaleAt: 'query' },
    );
    const merged = mergeHeads(b, ctx, o.width);
    return linear(b, merged, { weight: w.outWeight, bias: w.outBias, inFeatures: o.width, outFeatures: o.width, name: 'out_proj' });
  });
}

/** One pre-LN residual block, [B, S, W] → [B, S, W]. */
export function preLnResidualBlock(b: GraphBuilder, x: string, w: PackedBlockWeights, o: PreLnBlockOptions): string {
  return b.scoped(o.name ?? 'block', () => {
    const h1 = layerNorm(b, x, { ...w.ln1, epsilon: o.lnEps, name: 'ln_1' });
    const attn = packedSelfAttention(b, h1, w, { width: o.width, heads: o.heads, bias: o.attentionBias });
    const x1 = b.op('Add', [x, attn], {}, 'residual_attn');
    const h2 = layerNorm(b, x1, { ...w.ln2, epsilon: o.lnEps, name: 'ln_2' });
    const fc = linear(b, h2, { weight: w.fcWeight, bias: w.fcBias, inFeatures: o.width, outFeatures: o.intermediate, name: 'c_fc' });
    const act = activation(b, fc, o.act);
    const proj = linear(b, act, { weight: w.projWeight, bias: w.projBias, inFeatures: o.intermediate, outFeatures: o.width, name: 'c_proj' });
    return b.op('Add', [x1, proj], {}, 'residual_mlp');
  });
}

/** Largest protobuf message; bigger models would need ONNX external data. */
const PROTOBUF_LIMIT = 2 ** 31 - 1;

export function assertFitsProtobuf(b: GraphBuilder, what: string): void {
  // A little headroom for the graph structure itself.
  if (b.weightBytes > PROTOBUF_LIMIT - 64 * 1024 * 1024) {
    throw new Img2PromptError(
      undefined,
      `${what}: ${(b.weightBytes / 2 ** 30).toFixed(2)} GiB of float32 weights exceed the 2 GiB limit of a single ONNX protobuf`,
    );
  }
}

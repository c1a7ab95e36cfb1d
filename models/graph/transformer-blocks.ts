import { Img2PromptError } from '../../src/util/errors.js';
import { GraphBuilder, attention, dimOf, gelu, layerNorm, linear, mergeHeads, quickGelu, softmax, splitHeads } from './onnx-builder.js';

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
  /**
   * Keys and values of earlier tokens, [1, H, P, D], shared by every row of the batch: the block then
   * attends over those P positions (unmasked) and its own S (under `attentionBias`). See `attendWithPast`.
   */
  past?: { key: string; value: string };
  name?: string;
}

/** What a block computed besides its output: the keys and values of its own tokens, [B, H, S, D]. */
export interface BlockKeysValues {
  key: string;
  value: string;
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
  o: { width: number; heads: number; bias?: string; past?: { key: string; value: string }; name?: string },
): { out: string } & BlockKeysValues {
  const headDim = o.width / o.heads;
  if (!Number.isInteger(headDim)) throw new Error(`packedSelfAttention: width ${o.width} is not divisible by ${o.heads} heads`);
  return b.scoped(o.name ?? 'attn', () => {
    const qkv = linear(b, x, { weight: w.qkvWeight, bias: w.qkvBias, inFeatures: o.width, outFeatures: 3 * o.width, name: 'in_proj' });
    // Opset 17 Split without sizes cuts the axis into equal parts.
    const [q, k, v] = b.node('Split', [qkv], { axis: -1 }, { outputs: 3, name: 'split_qkv' }) as [string, string, string];
    const heads = {
      q: splitHeads(b, q, o.heads, headDim, 'q_heads'),
      k: splitHeads(b, k, o.heads, headDim, 'k_heads'),
      v: splitHeads(b, v, o.heads, headDim, 'v_heads'),
    };
    const ctx = o.past
      ? attendWithPast(b, heads.q, heads.k, heads.v, o.past, { headDim, bias: o.bias })
      : attention(b, heads.q, heads.k, heads.v, { headDim, bias: o.bias, scaleAt: 'query' });
    const merged = mergeHeads(b, ctx, o.width);
    const out = linear(b, merged, { weight: w.outWeight, bias: w.outBias, inFeatures: o.width, outFeatures: o.width, name: 'out_proj' });
    return { out, key: heads.k, value: heads.v };
  });
}

/**
 * Attention of S new tokens over P earlier ones plus themselves, with the earlier keys and values
 * given once for the whole batch ([1, H, P, D]) rather than copied per row: the scores against the
 * past and against the new tokens are two broadcasting MatMuls joined before one softmax, and the
 * context is the sum of the two halves' products with their values. Same maths as attention over the
 * concatenation (scale on q first, as open_clip); `bias` masks only the new-token half.
 */
export function attendWithPast(
  b: GraphBuilder,
  q: string,
  k: string,
  v: string,
  past: { key: string; value: string },
  o: { headDim: number; bias?: string },
): string {
  return b.scoped('attention_with_past', () => {
    const qs = b.op('Mul', [q, b.constFloat(1 / Math.sqrt(o.headDim))]);
    const pastScores = b.op('MatMul', [qs, b.op('Transpose', [past.key], { perm: [0, 1, 3, 2] })], {}, 'past_scores');
    let ownScores = b.op('MatMul', [qs, b.op('Transpose', [k], { perm: [0, 1, 3, 2] })], {}, 'own_scores');
    if (o.bias) ownScores = b.op('Add', [ownScores, o.bias]);
    const probs = softmax(b, b.op('Concat', [pastScores, ownScores], { axis: -1 }), -1);
    const sizes = b.op('Concat', [dimOf(b, past.key, 2, 'past_len'), dimOf(b, k, 2, 'own_len')], { axis: 0 }, 'split_sizes');
    const [pastProbs, ownProbs] = b.node('Split', [probs, sizes], { axis: -1 }, { outputs: 2, name: 'split_probs' }) as [string, string];
    return b.op('Add', [b.op('MatMul', [pastProbs, past.value]), b.op('MatMul', [ownProbs, v])], {}, 'context');
  });
}

/** One pre-LN residual block, [B, S, W] → [B, S, W]. */
export function preLnResidualBlock(b: GraphBuilder, x: string, w: PackedBlockWeights, o: PreLnBlockOptions): string {
  return preLnResidualBlockWithKeys(b, x, w, o).out;
}

/** `preLnResidualBlock` that also hands back the keys and values of its tokens (for a prefix cache). */
export function preLnResidualBlockWithKeys(b: GraphBuilder, x: string, w: PackedBlockWeights, o: PreLnBlockOptions): { out: string } & BlockKeysValues {
  return b.scoped(o.name ?? 'block', () => {
    const h1 = layerNorm(b, x, { ...w.ln1, epsilon: o.lnEps, name: 'ln_1' });
    const attn = packedSelfAttention(b, h1, w, { width: o.width, heads: o.heads, bias: o.attentionBias, past: o.past });
    const x1 = b.op('Add', [x, attn.out], {}, 'residual_attn');
    const h2 = layerNorm(b, x1, { ...w.ln2, epsilon: o.lnEps, name: 'ln_2' });
    const fc = linear(b, h2, { weight: w.fcWeight, bias: w.fcBias, inFeatures: o.width, outFeatures: o.intermediate, name: 'c_fc' });
    const act = activation(b, fc, o.act);
    const proj = linear(b, act, { weight: w.projWeight, bias: w.projBias, inFeatures: o.intermediate, outFeatures: o.width, name: 'c_proj' });
    return { out: b.op('Add', [x1, proj], {}, 'residual_mlp'), key: attn.key, value: attn.value };
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

import { imageTokenCount, type BlipCaptionConfig } from '../../src/caption/config.js';
import type { BlipWeights } from '../../src/caption/weights.js';
import type { Precision } from '../../src/runtime/precision.js';
import { GraphBuilder, attr, dimOf, gelu, layerNorm, linear } from './onnx-builder.js';
import {
  causalBiasAfterPast, crossAttentionStep, embedAfterPast, feedForward, lastPosition, pastInputs, presentOutputs, projectHeads, selfAttentionStep,
} from './caption-blocks.js';
import { vitHiddenStates } from './vit-encoder.js';

/**
 * BLIP (BlipForConditionalGeneration) as two graphs:
 *
 * image graph: pixel_values [images, 3, 384, 384] → the ViT → image_embeds [images, 577, Wv], and
 *   for every decoder layer i its cross-attention keys and values cross_key_i / cross_value_i
 *   [images, H, 577, D]: computed once per image, whatever the number of beams.
 *
 * decoder graph (one generation step): input_ids [rows, S] (the new tokens; rows = images × beams,
 *   image-major), past_key_i / past_value_i [rows, H, P, D] (P = 0 on the first step) and the
 *   cross keys/values of the images → logits [rows, vocab] of the last new token and
 *   present_key_i / present_value_i [rows, H, P+S, D].
 *
 * The decoder is transformers' BlipTextLMHeadModel: embeddings (positions P..P+S-1) + LayerNorm, per
 * layer causal self-attention, cross-attention and FFN (each post-LN), then the LM head (dense + GELU +
 * LayerNorm, the word embeddings as output matrix, its own bias).
 *
 * In fp16 the weights, the image keys/values and the past are half; the attention scores, masks and
 * softmax are float32 (caption-blocks.ts), and the logits leave the head's product as float32 before
 * its bias is added. Pixels in and logits out are float32 either way.
 */

/** Bump when the graphs change, so cached .onnx files are rebuilt. */
export const BLIP_GRAPH_VERSION = 1;

export function blipImageGraphBuilder(c: BlipCaptionConfig, w: BlipWeights, precision: Precision = 'fp32'): GraphBuilder {
  const v = c.vision;
  const t = c.text;
  const M = imageTokenCount(v);
  const D = t.width / t.heads;
  const b = new GraphBuilder('blip_image', {
    producerName: 'img2prompt',
    producerVersion: `blip-image-graph-${BLIP_GRAPH_VERSION}`,
    docString: 'BLIP vision model → image_embeds and each text-decoder layer\'s cross-attention keys/values',
    precision,
  });
  const pixels = b.input('pixel_values', 'float32', ['images', 3, v.imageSize, v.imageSize]);
  const embeds = b.scoped('vision_model', () => vitHiddenStates(b, b.toActivations(pixels, 'pixels'), v, w.vision));
  b.output(b.toFloat32(embeds, 'image_embeds_float32'), 'image_embeds', 'float32', ['images', M, v.width]);
  w.text.layers.forEach((layer, i) => {
    b.scoped(`layer.${i}.crossattention`, () => {
      const cross = layer.crossAttention!;
      b.output(projectHeads(b, embeds, cross.key, v.width, t, 'key'), `image_key_${i}`, b.activationType, ['images', t.heads, M, D]);
      b.output(projectHeads(b, embeds, cross.value, v.width, t, 'value'), `image_value_${i}`, b.activationType, ['images', t.heads, M, D]);
    });
  });
  return b;
}

export function blipDecoderGraphBuilder(c: BlipCaptionConfig, w: BlipWeights, precision: Precision = 'fp32'): GraphBuilder {
  const t = c.text;
  const M = imageTokenCount(c.vision);
  const D = t.width / t.heads;
  const b = new GraphBuilder('blip_decoder', {
    producerName: 'img2prompt',
    producerVersion: `blip-decoder-graph-${BLIP_GRAPH_VERSION}`,
    docString: 'BLIP text decoder, one generation step: new tokens + past and cross keys/values → next-token logits + present keys/values',
    precision,
  });
  const ids = b.input('input_ids', 'int64', ['rows', 'sequence']);
  const pasts = pastInputs(b, t);
  const crosses = Array.from({ length: t.layers }, (_, i) => ({
    key: b.input(`image_key_${i}`, b.activationType, ['images', t.heads, M, D]),
    value: b.input(`image_value_${i}`, b.activationType, ['images', t.heads, M, D]),
  }));
  const seqLen = dimOf(b, ids, 1, 'seq_len');
  const pastLen = dimOf(b, pasts[0]!.key, 2, 'past_len');
  const images = dimOf(b, crosses[0]!.key, 0, 'images');
  const causalBias = causalBiasAfterPast(b, pastLen, seqLen);
  const emb = embedAfterPast(b, t, w.text, ids, pastLen, seqLen);
  let h = emb.hidden;
  w.text.layers.forEach((layer, i) => {
    h = b.scoped(`layer.${i}`, () => {
      const self = selfAttentionStep(b, t, h, layer.selfAttention, { past: pasts[i]!, causalBias, seqLen });
      presentOutputs(b, t, i, self.present);
      const crossed = crossAttentionStep(b, t, self.out, layer.crossAttention!, { ...crosses[i]!, images, seqLen });
      return feedForward(b, t, crossed, layer);
    });
  });
  const logits = b.scoped('cls.predictions', () => {
    const last = lastPosition(b, h, seqLen);
    const dense = linear(b, last, { weight: w.head.transform.weight, bias: w.head.transform.bias, inFeatures: t.width, outFeatures: t.width, name: 'transform.dense' });
    const normed = layerNorm(b, gelu(b, dense), { ...w.head.transformLn, epsilon: t.lnEps, name: 'transform.LayerNorm' });
    // Tied to the word embeddings: Gemm reads the [vocab, W] table transposed instead of storing a copy.
    const bias = b.initializer('bias', w.head.bias, [t.vocabSize]);
    if (b.activationType === 'float32') return b.op('Gemm', [normed, emb.table, bias], { transB: 1, alpha: attr.float(1), beta: attr.float(1) }, 'decoder');
    const product = b.op('Gemm', [normed, emb.table], { transB: 1, alpha: attr.float(1) }, 'decoder');
    return b.op('Add', [b.toFloat32(product, 'logits_float32'), bias], {}, 'decoder_bias');
  });
  b.output(logits, 'logits', 'float32', ['rows', t.vocabSize]);
  return b;
}

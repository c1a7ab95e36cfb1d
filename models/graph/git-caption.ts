import { imageTokenCount, type GitCaptionConfig } from '../../src/caption/config.js';
import type { GitWeights } from '../../src/caption/weights.js';
import type { Precision } from '../../src/runtime/precision.js';
import { GraphBuilder, dimOf, layerNorm, linear } from './onnx-builder.js';
import {
  bidirectionalAttention, causalBiasAfterPast, embedAfterPast, feedForward, keysValues, lastPosition, pastInputs, presentOutputs, selfAttentionStep,
} from './caption-blocks.js';
import { vitHiddenStates } from './vit-encoder.js';

/**
 * GIT (GitForCausalLM) as two graphs. In GIT the image's tokens are the first M positions of the text
 * decoder's own sequence: they attend to each other both ways and never to the text, so their hidden
 * states, and their keys and values in every layer, depend on the image alone. They are exactly a
 * cached prefix, computed once per image:
 *
 * image graph: pixel_values [images, 3, 224, 224] → CLIP ViT (every token) → visual projection
 *   (Linear + LayerNorm) → the decoder layers over those tokens → prefix_key_i / prefix_value_i
 *   [images, H, M, D] for every layer i (the last layer stops after its keys and values).
 *
 * decoder graph (one generation step): input_ids [rows, S] (rows = images × beams, image-major),
 *   past_key_i / past_value_i [rows, H, P, D] (the text decoded so far) and the images' prefixes →
 *   logits [rows, vocab] of the last new token and present_key_i / present_value_i [rows, H, P+S, D].
 *   Text tokens take positions 0.. of the text (the image tokens have none), attend to every image
 *   token and causally to the text: one softmax over both.
 *
 * Precision as for BLIP (blip-caption.ts): in fp16 the image prefix and the past are half, the
 * scores and softmax float32, and the logits float32 before the output bias is added.
 */

/** Bump when the graphs change, so cached .onnx files are rebuilt. */
export const GIT_GRAPH_VERSION = 1;

export function gitImageGraphBuilder(c: GitCaptionConfig, w: GitWeights, precision: Precision = 'fp32'): GraphBuilder {
  const v = c.vision;
  const t = c.text;
  const M = imageTokenCount(v);
  const D = t.width / t.heads;
  const b = new GraphBuilder('git_image', {
    producerName: 'img2prompt',
    producerVersion: `git-image-graph-${GIT_GRAPH_VERSION}`,
    docString: 'GIT image encoder + projection, then each text-decoder layer\'s keys/values of the image tokens (a cached prefix)',
    precision,
  });
  const pixels = b.input('pixel_values', 'float32', ['images', 3, v.imageSize, v.imageSize]);
  const visual = b.scoped('image_encoder', () => vitHiddenStates(b, b.toActivations(pixels, 'pixels'), v, w.vision));
  let x = b.scoped('visual_projection', () => {
    const p = linear(b, visual, { weight: w.projection.weight, bias: w.projection.bias, inFeatures: v.width, outFeatures: t.width, name: 'linear' });
    return layerNorm(b, p, { ...w.projectionLn, epsilon: c.projectionLnEps, name: 'LayerNorm' });
  });
  b.output(b.toFloat32(x, 'image_tokens_float32'), 'image_tokens', 'float32', ['images', M, t.width]);
  w.text.layers.forEach((layer, i) => {
    x = b.scoped(`layer.${i}`, () => {
      const last = i === w.text.layers.length - 1;
      const kv = last ? { out: '', ...keysValues(b, t, x, layer.selfAttention) } : bidirectionalAttention(b, t, x, layer.selfAttention);
      b.output(kv.key, `image_key_${i}`, b.activationType, ['images', t.heads, M, D]);
      b.output(kv.value, `image_value_${i}`, b.activationType, ['images', t.heads, M, D]);
      return last ? x : feedForward(b, t, kv.out, layer);
    });
  });
  return b;
}

export function gitDecoderGraphBuilder(c: GitCaptionConfig, w: GitWeights, precision: Precision = 'fp32'): GraphBuilder {
  const t = c.text;
  const M = imageTokenCount(c.vision);
  const D = t.width / t.heads;
  const b = new GraphBuilder('git_decoder', {
    producerName: 'img2prompt',
    producerVersion: `git-decoder-graph-${GIT_GRAPH_VERSION}`,
    docString: 'GIT text decoder, one generation step: new tokens + past and image-prefix keys/values → next-token logits + present keys/values',
    precision,
  });
  const ids = b.input('input_ids', 'int64', ['rows', 'sequence']);
  const pasts = pastInputs(b, t);
  const prefixes = Array.from({ length: t.layers }, (_, i) => ({
    key: b.input(`image_key_${i}`, b.activationType, ['images', t.heads, M, D]),
    value: b.input(`image_value_${i}`, b.activationType, ['images', t.heads, M, D]),
  }));
  const seqLen = dimOf(b, ids, 1, 'seq_len');
  const pastLen = dimOf(b, pasts[0]!.key, 2, 'past_len');
  const images = dimOf(b, prefixes[0]!.key, 0, 'images');
  const causalBias = causalBiasAfterPast(b, pastLen, seqLen);
  let h = embedAfterPast(b, t, w.text, ids, pastLen, seqLen).hidden;
  w.text.layers.forEach((layer, i) => {
    h = b.scoped(`layer.${i}`, () => {
      const self = selfAttentionStep(b, t, h, layer.selfAttention, { past: pasts[i]!, causalBias, seqLen, prefix: { ...prefixes[i]!, images } });
      presentOutputs(b, t, i, self.present);
      return feedForward(b, t, self.out, layer);
    });
  });
  const last = lastPosition(b, h, seqLen);
  const head = { weight: w.output.weight, inFeatures: t.width, outFeatures: t.vocabSize, name: 'output' };
  const logits = b.activationType === 'float32'
    ? linear(b, last, { ...head, bias: w.output.bias })
    : b.op('Add', [b.toFloat32(linear(b, last, head), 'logits_float32'), b.initializer('output.bias', w.output.bias, [t.vocabSize])], {}, 'output_bias');
  b.output(logits, 'logits', 'float32', ['rows', t.vocabSize]);
  return b;
}

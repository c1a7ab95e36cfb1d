import { imageTokenCount, type BlipCaptionConfig } from '../../src/caption/config.js';
import type { BlipWeights } from '../../src/caption/weights.js';
import { GraphBuilder, attr, dimOf, gelu, layerNorm, linear } from '../../models/graph/onnx-builder.js';
import { causalBiasAfterPast, crossAttentionStep, embedAfterPast, feedForward, projectHeads, selfAttentionStep } from '../../models/graph/caption-blocks.js';
import { vitHiddenStates } from '../../models/graph/vit-encoder.js';

/**
 * BLIP's two graphs with the interface of the published ready exports (src/caption/export-io.ts),
 * built from a checkpoint with the project's own blocks, so CI can open an export-shaped folder
 * without torch (scripts/fixtures/caption_export.py makes the same folder with torch, by hand):
 *   vision_model.onnx: pixel_values → last_hidden_state
 *   decoder: input_ids, attention_mask, encoder_hidden_states, past_key_values.{i}.key/value
 *     [, use_cache_branch] → logits [rows, S, vocab] (every position, as exports give them),
 *     present.{i}.key/value. The decoder projects the image tokens to keys and values itself, at
 *     every step, per row. The masks and the branch flag are accepted and not read: rows are never
 *     padded here, and a past of length 0 is the uncached branch.
 */

export function blipExportImageGraph(c: BlipCaptionConfig, w: BlipWeights): GraphBuilder {
  const v = c.vision;
  const b = new GraphBuilder('blip_export_image', { producerName: 'img2prompt-test' });
  const pixels = b.input('pixel_values', 'float32', ['batch_size', 3, v.imageSize, v.imageSize]);
  const hidden = b.scoped('vision_model', () => vitHiddenStates(b, pixels, v, w.vision));
  b.output(hidden, 'last_hidden_state', 'float32', ['batch_size', imageTokenCount(v), v.width]);
  return b;
}

export function blipExportDecoderGraph(c: BlipCaptionConfig, w: BlipWeights, options: { merged: boolean }): GraphBuilder {
  const t = c.text;
  const D = t.width / t.heads;
  const b = new GraphBuilder('blip_export_decoder', { producerName: 'img2prompt-test' });
  const ids = b.input('input_ids', 'int64', ['batch_size', 'sequence_length']);
  b.input('attention_mask', 'int64', ['batch_size', 'total_length']);
  const image = b.input('encoder_hidden_states', 'float32', ['batch_size', imageTokenCount(c.vision), c.vision.width]);
  const pasts = Array.from({ length: t.layers }, (_, i) => ({
    key: b.input(`past_key_values.${i}.key`, 'float32', ['batch_size', t.heads, 'past_sequence_length', D]),
    value: b.input(`past_key_values.${i}.value`, 'float32', ['batch_size', t.heads, 'past_sequence_length', D]),
  }));
  if (options.merged) b.input('use_cache_branch', 'bool', [1]);
  const seqLen = dimOf(b, ids, 1, 'seq_len');
  const pastLen = dimOf(b, pasts[0]!.key, 2, 'past_len');
  const rows = dimOf(b, ids, 0, 'rows');
  const causalBias = causalBiasAfterPast(b, pastLen, seqLen);
  const emb = embedAfterPast(b, t, w.text, ids, pastLen, seqLen);
  let h = emb.hidden;
  w.text.layers.forEach((layer, i) => {
    h = b.scoped(`layer.${i}`, () => {
      const self = selfAttentionStep(b, t, h, layer.selfAttention, { past: pasts[i]!, causalBias, seqLen });
      b.output(self.present.key, `present.${i}.key`, 'float32', ['batch_size', t.heads, 'total_length', D]);
      b.output(self.present.value, `present.${i}.value`, 'float32', ['batch_size', t.heads, 'total_length', D]);
      const cross = layer.crossAttention!;
      // Each row is its own "image": the row's copy of the image tokens, projected here.
      const key = projectHeads(b, image, cross.key, c.vision.width, t, 'cross_key');
      const value = projectHeads(b, image, cross.value, c.vision.width, t, 'cross_value');
      const crossed = crossAttentionStep(b, t, self.out, cross, { key, value, images: rows, seqLen });
      return feedForward(b, t, crossed, layer);
    });
  });
  const logits = b.scoped('cls.predictions', () => {
    const dense = linear(b, h, { weight: w.head.transform.weight, bias: w.head.transform.bias, inFeatures: t.width, outFeatures: t.width, name: 'transform.dense' });
    const normed = layerNorm(b, gelu(b, dense), { ...w.head.transformLn, epsilon: t.lnEps, name: 'transform.LayerNorm' });
    const table = b.op('Transpose', [emb.table], { perm: attr.ints([1, 0]) });
    return b.op('Add', [b.op('MatMul', [normed, table]), b.initializer('bias', w.head.bias, [t.vocabSize])], {}, 'decoder');
  });
  b.output(logits, 'logits', 'float32', ['batch_size', 'sequence_length', t.vocabSize]);
  return b;
}

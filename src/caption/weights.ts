import { existsSync } from 'node:fs';
import path from 'node:path';
import { Img2PromptError } from '../util/errors.js';
import { readSafetensors, tensorToFloat32, type SafetensorsFile, type SafetensorsInput } from '../models/safetensors.js';
import { blockPlan, type ClipBlockWeights, type LayerNormWeights, type PlanEntry } from '../clip/weights.js';
import { imageTokenCount, loadCaptionConfig, type CaptionConfig, type TextDecoderConfig, type VitConfig } from './config.js';

/**
 * Captioner weights in one canonical in-memory form per architecture, and the one table per
 * architecture that maps it to and from the tensor names of a Hugging Face checkpoint (each entry
 * reads a tensor out of canonical weights and writes a file tensor into them, so the two directions
 * are each other's inverse by construction). Matrices of Linear layers keep PyTorch's [out, in].
 */

export interface LinearWeights {
  weight: Float32Array;
  bias: Float32Array;
}

export interface VitWeights {
  /** Patch convolution [W, 3, P, P]; BLIP's has a bias, CLIP's (GIT's) none. */
  patchWeight: Float32Array;
  patchBias: Float32Array | undefined;
  classEmbedding: Float32Array;
  /** [tokens, W]: the class token's row first, then patches in row-major order. */
  positionEmbedding: Float32Array;
  /** CLIP's ln_pre (GIT); BLIP has none. */
  preLn: LayerNormWeights | undefined;
  /** Pre-LN blocks with q/k/v packed in one [3W, W] projection. */
  blocks: ClipBlockWeights[];
  /** Applied to every token (both architectures feed all of them to the decoder). */
  postLn: LayerNormWeights;
}

/** BERT attention sublayer: projections, then output dense + residual + LayerNorm. */
export interface BertAttentionWeights {
  query: LinearWeights;
  key: LinearWeights;
  value: LinearWeights;
  output: LinearWeights;
  ln: LayerNormWeights;
}

export interface DecoderLayerWeights {
  selfAttention: BertAttentionWeights;
  /** BLIP only: attention to the image embeddings (keys and values from the vision width). */
  crossAttention: BertAttentionWeights | undefined;
  intermediate: LinearWeights;
  output: LinearWeights;
  outputLn: LayerNormWeights;
}

export interface TextDecoderWeights {
  wordEmbeddings: Float32Array;
  positionEmbeddings: Float32Array;
  embeddingsLn: LayerNormWeights;
  layers: DecoderLayerWeights[];
}

export interface BlipWeights {
  arch: 'blip';
  vision: VitWeights;
  text: TextDecoderWeights;
  /** BERT's LM head: dense + GELU + LayerNorm, then the word embeddings (tied) and this bias. */
  head: { transform: LinearWeights; transformLn: LayerNormWeights; bias: Float32Array };
}

export interface GitWeights {
  arch: 'git';
  vision: VitWeights;
  /** Linear (vision width → text width) + LayerNorm over every image token. */
  projection: LinearWeights;
  projectionLn: LayerNormWeights;
  text: TextDecoderWeights;
  /** The LM head, a plain Linear [vocab, width] (untied). */
  output: LinearWeights;
}

export type CaptionWeights = BlipWeights | GitWeights;

const EMPTY = new Float32Array(0);
const emptyLinear = (): LinearWeights => ({ weight: EMPTY, bias: EMPTY });
const emptyLn = (): LayerNormWeights => ({ weight: EMPTY, bias: EMPTY });
const emptyAttention = (): BertAttentionWeights => ({ query: emptyLinear(), key: emptyLinear(), value: emptyLinear(), output: emptyLinear(), ln: emptyLn() });

function emptyBlock(): ClipBlockWeights {
  return { ln1: emptyLn(), qkvWeight: EMPTY, qkvBias: EMPTY, outWeight: EMPTY, outBias: EMPTY, ln2: emptyLn(), fcWeight: EMPTY, fcBias: EMPTY, projWeight: EMPTY, projBias: EMPTY };
}

function emptyVit(v: VitConfig, preLn: boolean, patchBias: boolean): VitWeights {
  return {
    patchWeight: EMPTY,
    patchBias: patchBias ? EMPTY : undefined,
    classEmbedding: EMPTY,
    positionEmbedding: EMPTY,
    preLn: preLn ? emptyLn() : undefined,
    blocks: Array.from({ length: v.layers }, emptyBlock),
    postLn: emptyLn(),
  };
}

function emptyText(t: TextDecoderConfig, cross: boolean): TextDecoderWeights {
  return {
    wordEmbeddings: EMPTY,
    positionEmbeddings: EMPTY,
    embeddingsLn: emptyLn(),
    layers: Array.from({ length: t.layers }, () => ({
      selfAttention: emptyAttention(),
      crossAttention: cross ? emptyAttention() : undefined,
      intermediate: emptyLinear(),
      output: emptyLinear(),
      outputLn: emptyLn(),
    })),
  };
}

/** Canonical weights with every array empty, to be filled through the plan's `put`s. */
export function emptyCaptionWeights(c: CaptionConfig): CaptionWeights {
  if (c.arch === 'blip') {
    return { arch: 'blip', vision: emptyVit(c.vision, false, true), text: emptyText(c.text, true), head: { transform: emptyLinear(), transformLn: emptyLn(), bias: EMPTY } };
  }
  return { arch: 'git', vision: emptyVit(c.vision, true, false), projection: emptyLinear(), projectionLn: emptyLn(), text: emptyText(c.text, false), output: emptyLinear() };
}

type Entry<W> = PlanEntry<W>;

function tensorEntry<W>(name: string, shape: number[], get: (w: W) => Float32Array, put: (w: W, d: Float32Array) => void): Entry<W> {
  return { name, shape, get, put };
}

function linearEntries<W>(name: string, out: number, inF: number, pick: (w: W) => LinearWeights): Entry<W>[] {
  return [
    tensorEntry(`${name}.weight`, [out, inF], (w) => pick(w).weight, (w, d) => void (pick(w).weight = d)),
    tensorEntry(`${name}.bias`, [out], (w) => pick(w).bias, (w, d) => void (pick(w).bias = d)),
  ];
}

function lnEntries<W>(name: string, width: number, pick: (w: W) => LayerNormWeights): Entry<W>[] {
  return [
    tensorEntry(`${name}.weight`, [width], (w) => pick(w).weight, (w, d) => void (pick(w).weight = d)),
    tensorEntry(`${name}.bias`, [width], (w) => pick(w).bias, (w, d) => void (pick(w).bias = d)),
  ];
}

function* bertAttentionEntries<W>(prefix: string, width: number, kvWidth: number, pick: (w: W) => BertAttentionWeights): Generator<Entry<W>> {
  yield* linearEntries<W>(`${prefix}.self.query`, width, width, (w) => pick(w).query);
  yield* linearEntries<W>(`${prefix}.self.key`, width, kvWidth, (w) => pick(w).key);
  yield* linearEntries<W>(`${prefix}.self.value`, width, kvWidth, (w) => pick(w).value);
  yield* linearEntries<W>(`${prefix}.output.dense`, width, width, (w) => pick(w).output);
  yield* lnEntries<W>(`${prefix}.output.LayerNorm`, width, (w) => pick(w).ln);
}

/** BERT embeddings and layers under `prefix` (`text_decoder.bert.` or `git.`). */
function* textDecoderEntries<W>(prefix: string, t: TextDecoderConfig, crossWidth: number | undefined, text: (w: W) => TextDecoderWeights): Generator<Entry<W>> {
  yield tensorEntry<W>(`${prefix}embeddings.word_embeddings.weight`, [t.vocabSize, t.width], (w) => text(w).wordEmbeddings, (w, d) => void (text(w).wordEmbeddings = d));
  yield tensorEntry<W>(`${prefix}embeddings.position_embeddings.weight`, [t.maxPositions, t.width], (w) => text(w).positionEmbeddings, (w, d) => void (text(w).positionEmbeddings = d));
  yield* lnEntries<W>(`${prefix}embeddings.LayerNorm`, t.width, (w) => text(w).embeddingsLn);
  for (let i = 0; i < t.layers; i++) {
    const layer = (w: W) => text(w).layers[i]!;
    const p = `${prefix}encoder.layer.${i}.`;
    yield* bertAttentionEntries<W>(`${p}attention`, t.width, t.width, (w) => layer(w).selfAttention);
    if (crossWidth !== undefined) yield* bertAttentionEntries<W>(`${p}crossattention`, t.width, crossWidth, (w) => layer(w).crossAttention!);
    yield* linearEntries<W>(`${p}intermediate.dense`, t.intermediate, t.width, (w) => layer(w).intermediate);
    yield* linearEntries<W>(`${p}output.dense`, t.width, t.intermediate, (w) => layer(w).output);
    yield* lnEntries<W>(`${p}output.LayerNorm`, t.width, (w) => layer(w).outputLn);
  }
}

/** BLIP's ViT: its own names (packed `qkv`, `projection`) around the same pre-LN block. */
function* blipVisionEntries(v: VitConfig): Generator<Entry<BlipWeights>> {
  const W = v.width;
  const tokens = imageTokenCount(v);
  const vis = (w: BlipWeights) => w.vision;
  yield tensorEntry<BlipWeights>('vision_model.embeddings.class_embedding', [1, 1, W], (w) => vis(w).classEmbedding, (w, d) => void (vis(w).classEmbedding = d));
  yield tensorEntry<BlipWeights>('vision_model.embeddings.patch_embedding.weight', [W, 3, v.patchSize, v.patchSize], (w) => vis(w).patchWeight, (w, d) => void (vis(w).patchWeight = d));
  yield tensorEntry<BlipWeights>('vision_model.embeddings.patch_embedding.bias', [W], (w) => vis(w).patchBias!, (w, d) => void (vis(w).patchBias = d));
  yield tensorEntry<BlipWeights>('vision_model.embeddings.position_embedding', [1, tokens, W], (w) => vis(w).positionEmbedding, (w, d) => void (vis(w).positionEmbedding = d));
  for (let i = 0; i < v.layers; i++) {
    const blk = (w: BlipWeights) => vis(w).blocks[i]!;
    const p = `vision_model.encoder.layers.${i}.`;
    yield* lnEntries<BlipWeights>(`${p}layer_norm1`, W, (w) => blk(w).ln1);
    yield tensorEntry<BlipWeights>(`${p}self_attn.qkv.weight`, [3 * W, W], (w) => blk(w).qkvWeight, (w, d) => void (blk(w).qkvWeight = d));
    yield tensorEntry<BlipWeights>(`${p}self_attn.qkv.bias`, [3 * W], (w) => blk(w).qkvBias, (w, d) => void (blk(w).qkvBias = d));
    yield tensorEntry<BlipWeights>(`${p}self_attn.projection.weight`, [W, W], (w) => blk(w).outWeight, (w, d) => void (blk(w).outWeight = d));
    yield tensorEntry<BlipWeights>(`${p}self_attn.projection.bias`, [W], (w) => blk(w).outBias, (w, d) => void (blk(w).outBias = d));
    yield* lnEntries<BlipWeights>(`${p}layer_norm2`, W, (w) => blk(w).ln2);
    yield tensorEntry<BlipWeights>(`${p}mlp.fc1.weight`, [v.intermediate, W], (w) => blk(w).fcWeight, (w, d) => void (blk(w).fcWeight = d));
    yield tensorEntry<BlipWeights>(`${p}mlp.fc1.bias`, [v.intermediate], (w) => blk(w).fcBias, (w, d) => void (blk(w).fcBias = d));
    yield tensorEntry<BlipWeights>(`${p}mlp.fc2.weight`, [W, v.intermediate], (w) => blk(w).projWeight, (w, d) => void (blk(w).projWeight = d));
    yield tensorEntry<BlipWeights>(`${p}mlp.fc2.bias`, [W], (w) => blk(w).projBias, (w, d) => void (blk(w).projBias = d));
  }
  yield* lnEntries<BlipWeights>('vision_model.post_layernorm', W, (w) => vis(w).postLn);
}

function* blipPlan(c: Extract<CaptionConfig, { arch: 'blip' }>): Generator<Entry<BlipWeights>> {
  const t = c.text;
  yield* blipVisionEntries(c.vision);
  yield* textDecoderEntries<BlipWeights>('text_decoder.bert.', t, c.vision.width, (w) => w.text);
  yield* linearEntries<BlipWeights>('text_decoder.cls.predictions.transform.dense', t.width, t.width, (w) => w.head.transform);
  yield* lnEntries<BlipWeights>('text_decoder.cls.predictions.transform.LayerNorm', t.width, (w) => w.head.transformLn);
  // The decoder's weight is the word embedding table and its bias this one (transformers ties both).
  yield tensorEntry<BlipWeights>('text_decoder.cls.predictions.bias', [t.vocabSize], (w) => w.head.bias, (w, d) => void (w.head.bias = d));
}

function* gitPlan(c: Extract<CaptionConfig, { arch: 'git' }>): Generator<Entry<GitWeights>> {
  const v = c.vision;
  const t = c.text;
  const W = v.width;
  const vp = 'git.image_encoder.vision_model.';
  const vis = (w: GitWeights) => w.vision;
  yield tensorEntry<GitWeights>(`${vp}embeddings.class_embedding`, [W], (w) => vis(w).classEmbedding, (w, d) => void (vis(w).classEmbedding = d));
  yield tensorEntry<GitWeights>(`${vp}embeddings.patch_embedding.weight`, [W, 3, v.patchSize, v.patchSize], (w) => vis(w).patchWeight, (w, d) => void (vis(w).patchWeight = d));
  yield tensorEntry<GitWeights>(`${vp}embeddings.position_embedding.weight`, [imageTokenCount(v), W], (w) => vis(w).positionEmbedding, (w, d) => void (vis(w).positionEmbedding = d));
  yield* lnEntries<GitWeights>(`${vp}pre_layrnorm`, W, (w) => vis(w).preLn!);
  for (let i = 0; i < v.layers; i++) yield* blockPlan<GitWeights>(`${vp}encoder.layers.${i}.`, W, v.intermediate, 'hf', (w) => vis(w).blocks, i);
  yield* lnEntries<GitWeights>(`${vp}post_layernorm`, W, (w) => vis(w).postLn);
  yield* linearEntries<GitWeights>('git.visual_projection.visual_projection.0', t.width, W, (w) => w.projection);
  yield* lnEntries<GitWeights>('git.visual_projection.visual_projection.1', t.width, (w) => w.projectionLn);
  yield* textDecoderEntries<GitWeights>('git.', t, undefined, (w) => w.text);
  yield* linearEntries<GitWeights>('output', t.vocabSize, t.width, (w) => w.output);
}

function plan(c: CaptionConfig): Entry<CaptionWeights>[] {
  return (c.arch === 'blip' ? [...blipPlan(c)] : [...gitPlan(c)]) as Entry<CaptionWeights>[];
}

/** Every tensor a checkpoint of `c` holds, with its shape, in a stable order. */
export function captionTensorSpecs(c: CaptionConfig): { name: string; shape: number[] }[] {
  return plan(c).map(({ name, shape }) => ({ name, shape }));
}

/**
 * Canonical weights from a checkpoint's tensors, checking that every tensor is there with the shape
 * the config needs (a vocabulary or width that disagrees with config.json is named). Extra tensors
 * (buffers such as position_ids, a stored copy of a tied LM head) are ignored.
 */
export function captionWeightsFromSafetensors(c: CaptionConfig, st: SafetensorsFile): CaptionWeights {
  const w = emptyCaptionWeights(c);
  for (const entry of plan(c)) {
    const t = st.tensors.get(entry.name);
    if (!t) throw new Img2PromptError(st.path, `missing tensor "${entry.name}" (not a ${c.arch.toUpperCase()} checkpoint for this config.json, or an incomplete file)`, { code: 'MODEL_MISMATCH' });
    if (t.shape.length !== entry.shape.length || t.shape.some((d, i) => d !== entry.shape[i])) {
      throw new Img2PromptError(st.path, `tensor "${entry.name}" has shape [${t.shape.join(',')}], config.json needs [${entry.shape.join(',')}]`, { code: 'MODEL_MISMATCH' });
    }
    let values: Float32Array;
    try {
      values = tensorToFloat32(t);
    } catch (err) {
      throw new Img2PromptError(st.path, err instanceof Img2PromptError ? err.reason : String(err), {
        code: err instanceof Img2PromptError ? err.code : 'FILE_INVALID',
        cause: err,
      });
    }
    entry.put(w, values);
  }
  return w;
}

/** The tensors of a checkpoint of `c`, ready for writeSafetensors (F32). */
export function captionWeightsToTensors(c: CaptionConfig, w: CaptionWeights): SafetensorsInput[] {
  return plan(c).map((entry) => {
    const data = entry.get(w);
    const count = entry.shape.reduce((a, d) => a * d, 1);
    if (data.length !== count) throw new Img2PromptError(undefined, `weights for "${entry.name}" have ${data.length} values, [${entry.shape.join(',')}] needs ${count}`, { code: 'FILE_INVALID' });
    return { name: entry.name, dtype: 'F32' as const, shape: entry.shape, data };
  });
}

export const CAPTION_WEIGHTS_FILE = 'model.safetensors';

export interface CaptionCheckpoint {
  dir: string;
  config: CaptionConfig;
  weights: CaptionWeights;
  weightsFile: string;
}

/** config.json + preprocessor_config.json + model.safetensors of a Hugging Face captioner folder. */
export async function loadCaptionCheckpoint(dir: string): Promise<CaptionCheckpoint> {
  const config = await loadCaptionConfig(dir);
  const weightsFile = path.join(dir, CAPTION_WEIGHTS_FILE);
  if (!existsSync(weightsFile)) throw new Img2PromptError(weightsFile, 'missing: a captioner folder needs its model.safetensors', { code: 'MODEL_MISSING' });
  const st = await readSafetensors(weightsFile);
  return { dir, config, weights: captionWeightsFromSafetensors(config, st), weightsFile };
}

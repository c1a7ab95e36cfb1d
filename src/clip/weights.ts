import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { Img2PromptError } from '../util/errors.js';
import { tensorToFloat32, type SafetensorsFile, type SafetensorsInput } from '../models/safetensors.js';
import { readWeightsFile } from '../models/weights-file.js';
import { CLIP_CHECKPOINT_FILES, CLIP_WEIGHTS_FILE_NAMES, findClipWeightsFile } from './checkpoint-files.js';
import {
  loadHfClipConfig,
  loadOpenClipConfig,
  visionTokenCount,
  type ClipConfig,
  type OpenClipParseOptions,
} from './config.js';

/**
 * CLIP weights in one canonical in-memory form, and the mapping between it and the two checkpoint
 * layouts in the wild:
 *
 *   open_clip (and OpenAI's original): `visual.*` + top-level text tower (`token_embedding.weight`,
 *     `transformer.resblocks.N.*`, `ln_final.*`, `text_projection`), attention q/k/v packed in one
 *     `in_proj_weight` [3W, W], projections stored as [width, embed] and applied as x @ proj.
 *   Hugging Face CLIPModel: `vision_model.*`, `text_model.*`, separate q/k/v/out Linear layers,
 *     `visual_projection.weight` / `text_projection.weight` as nn.Linear [embed, width] without bias.
 *
 * The canonical form keeps open_clip's packed q/k/v (the graph does one MatMul for all three) and its
 * [width, embed] projections. Matrices of Linear layers are in PyTorch [out, in] layout.
 */

export type ClipLayout = 'open_clip' | 'hf';

export interface LayerNormWeights {
  weight: Float32Array;
  bias: Float32Array;
}

export interface ClipBlockWeights {
  ln1: LayerNormWeights;
  /** Rows [0, W) project to queries, [W, 2W) to keys, [2W, 3W) to values: [3W, W]. */
  qkvWeight: Float32Array;
  qkvBias: Float32Array;
  outWeight: Float32Array;
  outBias: Float32Array;
  ln2: LayerNormWeights;
  /** MLP: [intermediate, W] then [W, intermediate]. */
  fcWeight: Float32Array;
  fcBias: Float32Array;
  projWeight: Float32Array;
  projBias: Float32Array;
}

export interface ClipVisionWeights {
  /** Patch-embedding convolution kernel [W, 3, P, P] (no bias). */
  patchWeight: Float32Array;
  classEmbedding: Float32Array;
  /** [1 + grid², W]: row 0 for the class token, then patches in row-major order. */
  positionalEmbedding: Float32Array;
  lnPre: LayerNormWeights;
  blocks: ClipBlockWeights[];
  lnPost: LayerNormWeights;
  /** [W, embed]: image features = ln_post(class token) @ projection. */
  projection: Float32Array;
}

export interface ClipTextWeights {
  tokenEmbedding: Float32Array;
  positionalEmbedding: Float32Array;
  blocks: ClipBlockWeights[];
  lnFinal: LayerNormWeights;
  /** [W, embed]: text features = ln_final(EOT token) @ projection. */
  projection: Float32Array;
}

export interface ClipWeights {
  vision: ClipVisionWeights;
  text: ClipTextWeights;
  /** log of the logit temperature (CLIP similarity × exp(logitScale)). */
  logitScale: number;
}

/** A named tensor of either layout, with the shape its file must have. */
export interface ClipTensorSpec {
  name: string;
  shape: number[];
}

/** Every tensor a checkpoint of `layout` has for `config`, in a stable order. */
export function clipTensorSpecs(config: ClipConfig, layout: ClipLayout): ClipTensorSpec[] {
  return [...tensorPlan(config, layout)].map(({ name, shape }) => ({ name, shape }));
}

/**
 * One entry per stored tensor: its name and shape, how to read it out of canonical weights (`get`),
 * and how to write a file tensor into canonical weights (`put`). Keeping both directions in one table
 * makes the two mappings each other's inverse by construction.
 */
export interface PlanEntry<W = ClipWeights> {
  name: string;
  shape: number[];
  get: (w: W) => Float32Array;
  put: (w: W, data: Float32Array) => void;
}

function transpose(m: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(m.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = m[r * cols + c]!;
  return out;
}

function emptyBlock(): ClipBlockWeights {
  const e = new Float32Array(0);
  return {
    ln1: { weight: e, bias: e },
    qkvWeight: e,
    qkvBias: e,
    outWeight: e,
    outBias: e,
    ln2: { weight: e, bias: e },
    fcWeight: e,
    fcBias: e,
    projWeight: e,
    projBias: e,
  };
}

/** Canonical weights with every array empty, to be filled through the plan's `put`s. */
export function emptyClipWeights(config: ClipConfig): ClipWeights {
  const e = new Float32Array(0);
  return {
    vision: {
      patchWeight: e,
      classEmbedding: e,
      positionalEmbedding: e,
      lnPre: { weight: e, bias: e },
      blocks: Array.from({ length: config.vision.layers }, emptyBlock),
      lnPost: { weight: e, bias: e },
      projection: e,
    },
    text: {
      tokenEmbedding: e,
      positionalEmbedding: e,
      blocks: Array.from({ length: config.text.layers }, emptyBlock),
      lnFinal: { weight: e, bias: e },
      projection: e,
    },
    logitScale: 0,
  };
}

/** The tensors of one pre-LN block (CLIP's, in either layout; GIT's image encoder uses the HF one). */
export function* blockPlan<W>(prefix: string, width: number, inter: number, layout: ClipLayout, blocks: (w: W) => ClipBlockWeights[], i: number): Generator<PlanEntry<W>> {
  const blk = (w: W) => blocks(w)[i]!;
  const ln = (name: string, which: 'ln1' | 'ln2'): PlanEntry<W>[] => [
    { name: `${prefix}${name}.weight`, shape: [width], get: (w) => blk(w)[which].weight, put: (w, d) => void (blk(w)[which].weight = d) },
    { name: `${prefix}${name}.bias`, shape: [width], get: (w) => blk(w)[which].bias, put: (w, d) => void (blk(w)[which].bias = d) },
  ];
  const field = (name: string, shape: number[], key: 'outWeight' | 'outBias' | 'fcWeight' | 'fcBias' | 'projWeight' | 'projBias'): PlanEntry<W> => ({
    name: `${prefix}${name}`,
    shape,
    get: (w) => blk(w)[key],
    put: (w, d) => void (blk(w)[key] = d),
  });
  if (layout === 'open_clip') {
    yield* ln('ln_1', 'ln1');
    yield { name: `${prefix}attn.in_proj_weight`, shape: [3 * width, width], get: (w) => blk(w).qkvWeight, put: (w, d) => void (blk(w).qkvWeight = d) };
    yield { name: `${prefix}attn.in_proj_bias`, shape: [3 * width], get: (w) => blk(w).qkvBias, put: (w, d) => void (blk(w).qkvBias = d) };
    yield field('attn.out_proj.weight', [width, width], 'outWeight');
    yield field('attn.out_proj.bias', [width], 'outBias');
    yield* ln('ln_2', 'ln2');
    yield field('mlp.c_fc.weight', [inter, width], 'fcWeight');
    yield field('mlp.c_fc.bias', [inter], 'fcBias');
    yield field('mlp.c_proj.weight', [width, inter], 'projWeight');
    yield field('mlp.c_proj.bias', [width], 'projBias');
    return;
  }
  // HF keeps q, k and v as three Linear layers: each is one third of the packed projection.
  const qkv = ['q', 'k', 'v'] as const;
  const part = (arr: Float32Array, k: number, size: number) => arr.subarray(k * size, (k + 1) * size);
  const ensurePacked = (w: W) => {
    const b = blk(w);
    if (b.qkvWeight.length !== 3 * width * width) b.qkvWeight = new Float32Array(3 * width * width);
    if (b.qkvBias.length !== 3 * width) b.qkvBias = new Float32Array(3 * width);
    return b;
  };
  yield* ln('layer_norm1', 'ln1');
  for (let k = 0; k < 3; k++) {
    yield {
      name: `${prefix}self_attn.${qkv[k]}_proj.weight`,
      shape: [width, width],
      get: (w) => part(blk(w).qkvWeight, k, width * width),
      put: (w, d) => ensurePacked(w).qkvWeight.set(d, k * width * width),
    };
    yield {
      name: `${prefix}self_attn.${qkv[k]}_proj.bias`,
      shape: [width],
      get: (w) => part(blk(w).qkvBias, k, width),
      put: (w, d) => ensurePacked(w).qkvBias.set(d, k * width),
    };
  }
  yield field('self_attn.out_proj.weight', [width, width], 'outWeight');
  yield field('self_attn.out_proj.bias', [width], 'outBias');
  yield* ln('layer_norm2', 'ln2');
  yield field('mlp.fc1.weight', [inter, width], 'fcWeight');
  yield field('mlp.fc1.bias', [inter], 'fcBias');
  yield field('mlp.fc2.weight', [width, inter], 'projWeight');
  yield field('mlp.fc2.bias', [width], 'projBias');
}

function* tensorPlan(config: ClipConfig, layout: ClipLayout): Generator<PlanEntry> {
  const v = config.vision;
  const t = config.text;
  const E = config.embedDim;
  const oc = layout === 'open_clip';
  const lnPair = (prefix: string, width: number, pick: (w: ClipWeights) => LayerNormWeights, set: (w: ClipWeights, ln: LayerNormWeights) => void): PlanEntry[] => [
    { name: `${prefix}.weight`, shape: [width], get: (w) => pick(w).weight, put: (w, d) => set(w, { ...pick(w), weight: d }) },
    { name: `${prefix}.bias`, shape: [width], get: (w) => pick(w).bias, put: (w, d) => set(w, { ...pick(w), bias: d }) },
  ];

  // Vision tower.
  const vp = oc ? 'visual.' : 'vision_model.';
  yield {
    name: oc ? 'visual.conv1.weight' : 'vision_model.embeddings.patch_embedding.weight',
    shape: [v.width, 3, v.patchSize, v.patchSize],
    get: (w) => w.vision.patchWeight,
    put: (w, d) => void (w.vision.patchWeight = d),
  };
  yield {
    name: oc ? 'visual.class_embedding' : 'vision_model.embeddings.class_embedding',
    shape: [v.width],
    get: (w) => w.vision.classEmbedding,
    put: (w, d) => void (w.vision.classEmbedding = d),
  };
  yield {
    name: oc ? 'visual.positional_embedding' : 'vision_model.embeddings.position_embedding.weight',
    shape: [visionTokenCount(v), v.width],
    get: (w) => w.vision.positionalEmbedding,
    put: (w, d) => void (w.vision.positionalEmbedding = d),
  };
  // HF spells it "pre_layrnorm" (sic).
  yield* lnPair(oc ? 'visual.ln_pre' : 'vision_model.pre_layrnorm', v.width, (w) => w.vision.lnPre, (w, ln) => void (w.vision.lnPre = ln));
  for (let i = 0; i < v.layers; i++) {
    const prefix = oc ? `${vp}transformer.resblocks.${i}.` : `${vp}encoder.layers.${i}.`;
    yield* blockPlan(prefix, v.width, v.intermediate, layout, (w) => w.vision.blocks, i);
  }
  yield* lnPair(oc ? 'visual.ln_post' : 'vision_model.post_layernorm', v.width, (w) => w.vision.lnPost, (w, ln) => void (w.vision.lnPost = ln));
  yield oc
    ? { name: 'visual.proj', shape: [v.width, E], get: (w) => w.vision.projection, put: (w, d) => void (w.vision.projection = d) }
    : {
        name: 'visual_projection.weight',
        shape: [E, v.width],
        get: (w) => transpose(w.vision.projection, v.width, E),
        put: (w, d) => void (w.vision.projection = transpose(d, E, v.width)),
      };

  // Text tower.
  yield {
    name: oc ? 'token_embedding.weight' : 'text_model.embeddings.token_embedding.weight',
    shape: [t.vocabSize, t.width],
    get: (w) => w.text.tokenEmbedding,
    put: (w, d) => void (w.text.tokenEmbedding = d),
  };
  yield {
    name: oc ? 'positional_embedding' : 'text_model.embeddings.position_embedding.weight',
    shape: [t.contextLength, t.width],
    get: (w) => w.text.positionalEmbedding,
    put: (w, d) => void (w.text.positionalEmbedding = d),
  };
  for (let i = 0; i < t.layers; i++) {
    const prefix = oc ? `transformer.resblocks.${i}.` : `text_model.encoder.layers.${i}.`;
    yield* blockPlan(prefix, t.width, t.intermediate, layout, (w) => w.text.blocks, i);
  }
  yield* lnPair(oc ? 'ln_final' : 'text_model.final_layer_norm', t.width, (w) => w.text.lnFinal, (w, ln) => void (w.text.lnFinal = ln));
  yield oc
    ? { name: 'text_projection', shape: [t.width, E], get: (w) => w.text.projection, put: (w, d) => void (w.text.projection = d) }
    : {
        name: 'text_projection.weight',
        shape: [E, t.width],
        get: (w) => transpose(w.text.projection, t.width, E),
        put: (w, d) => void (w.text.projection = transpose(d, E, t.width)),
      };
  yield {
    name: 'logit_scale',
    shape: [],
    get: (w) => Float32Array.of(w.logitScale),
    put: (w, d) => void (w.logitScale = d[0]!),
  };
}

/** Which layout a set of tensor names is in, or undefined when it is neither. */
export function detectClipLayout(names: Iterable<string>): ClipLayout | undefined {
  const set = new Set(names);
  if (set.has('visual.conv1.weight') && set.has('token_embedding.weight')) return 'open_clip';
  if (set.has('vision_model.embeddings.patch_embedding.weight') && set.has('text_model.embeddings.token_embedding.weight')) return 'hf';
  return undefined;
}

/**
 * Canonical weights from the tensors of a checkpoint, checking that every expected tensor is present
 * with its expected shape. Extra tensors (HF's position_ids buffers, for instance) are ignored.
 */
export function clipWeightsFromTensors(
  config: ClipConfig,
  layout: ClipLayout,
  lookup: (name: string) => { shape: readonly number[]; values: () => Float32Array } | undefined,
  file: string,
): ClipWeights {
  const w = emptyClipWeights(config);
  for (const entry of tensorPlan(config, layout)) {
    const t = lookup(entry.name);
    if (!t) throw new Img2PromptError(file, `missing tensor "${entry.name}" (${layout} layout)`, { code: 'MODEL_MISMATCH' });
    // A stored scalar may come as [] or [1].
    const shapeOk =
      entry.shape.length === 0 ? t.shape.reduce((a, d) => a * d, 1) === 1 : t.shape.length === entry.shape.length && t.shape.every((d, i) => d === entry.shape[i]);
    if (!shapeOk) {
      throw new Img2PromptError(file, `tensor "${entry.name}" has shape [${t.shape.join(',')}], the config needs [${entry.shape.join(',')}]`, { code: 'MODEL_MISMATCH' });
    }
    entry.put(w, t.values());
  }
  return w;
}

/** The tensors of a checkpoint in `layout`, ready for writeSafetensors (F32). */
export function clipWeightsToTensors(config: ClipConfig, weights: ClipWeights, layout: ClipLayout): SafetensorsInput[] {
  const out: SafetensorsInput[] = [];
  for (const entry of tensorPlan(config, layout)) {
    const data = entry.get(weights);
    const count = entry.shape.reduce((a, d) => a * d, 1);
    if (data.length !== count) {
      throw new Img2PromptError(undefined, `weights for "${entry.name}" have ${data.length} values, [${entry.shape.join(',')}] needs ${count}`, { code: 'FILE_INVALID' });
    }
    out.push({ name: entry.name, dtype: 'F32', shape: entry.shape, data });
  }
  return out;
}

/** Canonical weights from an already-read safetensors file. */
export function clipWeightsFromSafetensors(config: ClipConfig, st: SafetensorsFile, layout?: ClipLayout): ClipWeights {
  const found = layout ?? detectClipLayout(st.tensors.keys());
  if (!found) throw new Img2PromptError(st.path, 'not a CLIP checkpoint: neither open_clip (visual.*) nor Hugging Face (vision_model.*) tensor names', { code: 'FILE_INVALID' });
  return clipWeightsFromTensors(
    config,
    found,
    (name) => {
      const t = st.tensors.get(name);
      return t && { shape: t.shape, values: () => tensorToFloat32(t) };
    },
    st.path,
  );
}

export interface ClipCheckpoint {
  dir: string;
  layout: ClipLayout;
  config: ClipConfig;
  weights: ClipWeights;
  /** The files that were read. */
  configFile: string;
  weightsFile: string;
}

export interface LoadClipCheckpointOptions extends OpenClipParseOptions {
  /** Use this config instead of reading one from the directory. */
  config?: ClipConfig;
}

/**
 * Load a CLIP checkpoint directory in either layout, from safetensors or torch.save weights (see
 * findClipWeightsFile). The layout is detected from the tensor names;
 * the config comes from open_clip_config.json (open_clip) or config.json + preprocessor_config.json
 * (HF), unless `options.config` is given.
 */
export async function loadClipCheckpoint(dir: string, options: LoadClipCheckpointOptions = {}): Promise<ClipCheckpoint> {
  const weightsFile = await findClipWeightsFile(dir);
  if (!weightsFile) throw new Img2PromptError(dir, `no CLIP weights in this checkpoint directory (${CLIP_WEIGHTS_FILE_NAMES.join(', ')}, or one .safetensors, .pt or .pth file)`, { code: 'MODEL_MISSING' });
  const st = await readWeightsFile(weightsFile);
  const layout = detectClipLayout(st.tensors.keys());
  if (!layout) throw new Img2PromptError(weightsFile, 'not a CLIP checkpoint: neither open_clip (visual.*) nor Hugging Face (vision_model.*) tensor names', { code: 'FILE_INVALID' });
  let config = options.config;
  let configFile = '<given config>';
  if (!config) {
    if (layout === 'open_clip') {
      configFile = path.join(dir, CLIP_CHECKPOINT_FILES.open_clip.config);
      if (!existsSync(configFile)) throw new Img2PromptError(configFile, 'missing: an open_clip checkpoint needs its model config', { code: 'MODEL_MISSING' });
      config = await loadOpenClipConfig(configFile, options);
    } else {
      configFile = path.join(dir, CLIP_CHECKPOINT_FILES.hf.config);
      if (!existsSync(configFile)) throw new Img2PromptError(configFile, 'missing: a Hugging Face CLIP checkpoint needs its config.json', { code: 'MODEL_MISSING' });
      const pre = path.join(dir, CLIP_CHECKPOINT_FILES.hf.preprocessor);
      config = await loadHfClipConfig(configFile, existsSync(pre) ? pre : undefined);
    }
  }
  const weights = clipWeightsFromSafetensors(config, st, layout);
  return { dir, layout, config, weights, configFile, weightsFile };
}

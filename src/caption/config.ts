import path from 'node:path';
import { existsSync } from 'node:fs';
import { Img2PromptError } from '../util/errors.js';
import { readJsonObject } from '../util/json-file.js';
import { Fields, isObject } from '../util/json-fields.js';
import { OPENAI_CLIP_MEAN, OPENAI_CLIP_STD } from '../clip/config.js';
import type { ClipImageProcessor } from '../image/image-processor.js';

/**
 * One normalised description of an image captioner, read from a Hugging Face model folder's
 * config.json (+ preprocessor_config.json). Every other part (weights mapping, graph builders,
 * random checkpoints, generation) works from this shape only. Two architectures today:
 *
 * - 'blip' (BlipForConditionalGeneration): a ViT whose every token is an image embedding, and a BERT
 *   decoder (post-LN layers: causal self-attention, cross-attention to the image embeddings, FFN) with
 *   an MLM-style LM head tied to the word embeddings. Generation starts from [DEC] and ends at [SEP].
 * - 'git' (GitForCausalLM): a CLIP ViT plus a projection whose tokens are a prefix of the decoder's
 *   sequence (attending among themselves both ways; text attends to all of them and causally to text).
 *
 * A further architecture is one more member of `CaptionConfig` plus its reader below, its weights
 * plan (weights.ts) and its graph builders (models/graph/).
 */

export type VitActivation = 'gelu' | 'quick_gelu';

export interface VitConfig {
  imageSize: number;
  patchSize: number;
  width: number;
  layers: number;
  heads: number;
  intermediate: number;
  act: VitActivation;
  lnEps: number;
}

/** A BERT-style decoder: embeddings + LayerNorm, post-LN layers, exact-GELU FFN. */
export interface TextDecoderConfig {
  vocabSize: number;
  width: number;
  layers: number;
  heads: number;
  intermediate: number;
  lnEps: number;
  maxPositions: number;
}

/** The ids generation is driven by. */
export interface CaptionTokenIds {
  /** First decoder input (BLIP's [DEC], GIT's [CLS]). */
  bos: number;
  /** Ends a caption (both: [SEP]). */
  eos: number;
  /** What finished rows are filled with (both: [PAD]). */
  pad: number;
}

export interface CaptionImageConfig {
  size: number;
  /**
   * How the processor makes the size×size input, with Pillow as transformers' PIL backend (and
   * transformers 4) does: 'hf-pil-resize' resizes the whole image to it (BlipImageProcessor);
   * 'hf-pil' resizes the short side and centre-crops with transformers' offset rule (CLIPImageProcessor,
   * GIT's processor).
   */
  processor: Extract<ClipImageProcessor, 'hf-pil' | 'hf-pil-resize'>;
  mean: [number, number, number];
  std: [number, number, number];
}

export interface BlipCaptionConfig {
  arch: 'blip';
  vision: VitConfig;
  text: TextDecoderConfig;
  tokens: CaptionTokenIds;
  image: CaptionImageConfig;
}

export interface GitCaptionConfig {
  arch: 'git';
  vision: VitConfig;
  text: TextDecoderConfig;
  /** epsilon of the LayerNorm after the visual projection (transformers takes the vision config's). */
  projectionLnEps: number;
  tokens: CaptionTokenIds;
  image: CaptionImageConfig;
}

export type CaptionConfig = BlipCaptionConfig | GitCaptionConfig;
export type CaptionArch = CaptionConfig['arch'];

/** Patch tokens plus the class token. */
export function imageTokenCount(v: VitConfig): number {
  const grid = v.imageSize / v.patchSize;
  return grid * grid + 1;
}

type Json = Record<string, unknown>;

function vitActivation(f: Fields, file: string, fallback: VitActivation): VitActivation {
  const v = f.raw('hidden_act') ?? fallback;
  if (v === 'gelu' || v === 'quick_gelu') return v;
  throw new Img2PromptError(file, `unsupported vision hidden_act ${JSON.stringify(v)} (only "gelu" and "quick_gelu")`, { code: 'FILE_INVALID' });
}

function vitConfig(f: Fields, file: string, defaults: VitConfig): VitConfig {
  f.requireDefault('num_channels', [3], 'vision input');
  return {
    imageSize: f.squareSize('image_size', defaults.imageSize),
    patchSize: f.int('patch_size', defaults.patchSize),
    width: f.int('hidden_size', defaults.width),
    layers: f.int('num_hidden_layers', defaults.layers),
    heads: f.int('num_attention_heads', defaults.heads),
    intermediate: f.int('intermediate_size', defaults.intermediate),
    act: vitActivation(f, file, defaults.act),
    lnEps: f.num('layer_norm_eps', defaults.lnEps),
  };
}

/** The decoder's own fields; the graphs implement exactly BERT's, so other variants are refused. */
function textDecoderConfig(f: Fields, file: string, defaults: TextDecoderConfig): TextDecoderConfig {
  const act = f.raw('hidden_act');
  if (act !== undefined && act !== 'gelu') throw new Img2PromptError(file, `unsupported text hidden_act ${JSON.stringify(act)} (only "gelu")`, { code: 'FILE_INVALID' });
  f.requireDefault('position_embedding_type', ['absolute'], 'position embedding');
  return {
    vocabSize: f.int('vocab_size', defaults.vocabSize),
    width: f.int('hidden_size', defaults.width),
    layers: f.int('num_hidden_layers', defaults.layers),
    heads: f.int('num_attention_heads', defaults.heads),
    intermediate: f.int('intermediate_size', defaults.intermediate),
    lnEps: f.num('layer_norm_eps', defaults.lnEps),
    maxPositions: f.int('max_position_embeddings', defaults.maxPositions),
  };
}

function tokenId(f: Fields, key: string, fallback: number, file: string): number {
  const v = f.raw(key) ?? fallback;
  if (!Number.isInteger(v) || (v as number) < 0) throw new Img2PromptError(file, `"${key}" must be a non-negative integer token id, got ${JSON.stringify(v)}`, { code: 'FILE_INVALID' });
  return v as number;
}

/** transformers' BlipVisionConfig / BlipTextConfig defaults (blip-base sizes): recent configs omit keys that equal them. */
const BLIP_VISION_DEFAULTS: VitConfig = { imageSize: 384, patchSize: 16, width: 768, layers: 12, heads: 12, intermediate: 3072, act: 'gelu', lnEps: 1e-5 };
const BLIP_TEXT_DEFAULTS: TextDecoderConfig = { vocabSize: 30524, width: 768, layers: 12, heads: 8, intermediate: 3072, lnEps: 1e-12, maxPositions: 512 };
/** transformers' GitVisionConfig / GitConfig defaults. */
const GIT_VISION_DEFAULTS: VitConfig = { imageSize: 224, patchSize: 16, width: 768, layers: 12, heads: 12, intermediate: 3072, act: 'quick_gelu', lnEps: 1e-5 };
const GIT_TEXT_DEFAULTS: TextDecoderConfig = { vocabSize: 30522, width: 768, layers: 6, heads: 12, intermediate: 3072, lnEps: 1e-12, maxPositions: 1024 };

function parseBlip(top: Fields, file: string): BlipCaptionConfig {
  const vis = vitConfig(top.has('vision_config') ? top.child('vision_config') : new Fields({}, file, 'vision_config'), file, BLIP_VISION_DEFAULTS);
  const txtFields = top.has('text_config') ? top.child('text_config') : new Fields({}, file, 'text_config');
  txtFields.requireDefault('is_decoder', [true], 'text model (only the decoder captions)');
  const text = textDecoderConfig(txtFields, file, BLIP_TEXT_DEFAULTS);
  // BlipForConditionalGeneration.generate: starts from bos ([DEC]), stops at sep ([SEP]), pads with pad.
  const tokens = {
    bos: tokenId(txtFields, 'bos_token_id', 30522, file),
    eos: tokenId(txtFields, 'sep_token_id', 102, file),
    pad: tokenId(txtFields, 'pad_token_id', 0, file),
  };
  return { arch: 'blip', vision: vis, text, tokens, image: { size: vis.imageSize, processor: 'hf-pil-resize', mean: [...OPENAI_CLIP_MEAN], std: [...OPENAI_CLIP_STD] } };
}

function parseGit(top: Fields, file: string): GitCaptionConfig {
  const vis = vitConfig(top.has('vision_config') ? top.child('vision_config') : new Fields({}, file, 'vision_config'), file, GIT_VISION_DEFAULTS);
  top.requireDefault('num_image_with_embedding', [], 'video captioning (num_image_with_embedding)');
  const text = textDecoderConfig(top, file, GIT_TEXT_DEFAULTS);
  const tokens = {
    bos: tokenId(top, 'bos_token_id', 101, file),
    eos: tokenId(top, 'eos_token_id', 102, file),
    pad: tokenId(top, 'pad_token_id', 0, file),
  };
  return {
    arch: 'git',
    vision: vis,
    text,
    projectionLnEps: vis.lnEps,
    tokens,
    image: { size: vis.imageSize, processor: 'hf-pil', mean: [...OPENAI_CLIP_MEAN], std: [...OPENAI_CLIP_STD] },
  };
}

/** Structural checks; a config that passes builds consistent graphs. */
export function validateCaptionConfig(c: CaptionConfig, file?: string): CaptionConfig {
  const fail = (reason: string): never => {
    throw new Img2PromptError(file, reason, { code: 'FILE_INVALID' });
  };
  const v = c.vision;
  const t = c.text;
  if (v.imageSize % v.patchSize !== 0) fail(`vision image_size ${v.imageSize} is not a multiple of patch_size ${v.patchSize}`);
  if (v.width % v.heads !== 0) fail(`vision hidden_size ${v.width} is not divisible by ${v.heads} heads`);
  if (t.width % t.heads !== 0) fail(`text hidden_size ${t.width} is not divisible by ${t.heads} heads`);
  for (const [name, id] of Object.entries(c.tokens)) {
    if (id >= t.vocabSize) fail(`${name} token id ${id} is outside the vocabulary of ${t.vocabSize}`);
  }
  if (c.image.size !== v.imageSize) fail(`the processor's image size ${c.image.size} differs from the vision tower's ${v.imageSize}`);
  return c;
}

/**
 * Parse a captioner's config.json (and, when given, its preprocessor_config.json for the image
 * normalisation). The architecture comes from `model_type` ("blip" or "git").
 */
export function parseCaptionConfig(json: unknown, file = '<config.json>', preprocessor?: { json: Json; file: string }): CaptionConfig {
  if (!isObject(json)) throw new Img2PromptError(file, 'captioner config is not a JSON object', { code: 'FILE_INVALID' });
  const top = new Fields(json, file, '');
  const type = json.model_type;
  let config: CaptionConfig;
  if (type === 'blip') config = parseBlip(top, file);
  else if (type === 'git') config = parseGit(top, file);
  else throw new Img2PromptError(file, `unsupported captioner model_type ${JSON.stringify(type)} (known: "blip", "git")`, { code: 'FILE_INVALID' });
  if (preprocessor) {
    const pre = new Fields(preprocessor.json, preprocessor.file, '');
    config.image.mean = pre.rgb('image_mean') ?? config.image.mean;
    config.image.std = pre.rgb('image_std') ?? config.image.std;
  }
  return validateCaptionConfig(config, file);
}

export const CAPTION_CONFIG_FILE = 'config.json';
export const CAPTION_PREPROCESSOR_FILE = 'preprocessor_config.json';

/** The config of the captioner folder `dir` (config.json + preprocessor_config.json when present). */
export async function loadCaptionConfig(dir: string): Promise<CaptionConfig> {
  const file = path.join(dir, CAPTION_CONFIG_FILE);
  if (!existsSync(file)) throw new Img2PromptError(file, 'missing: a captioner folder needs its config.json', { code: 'MODEL_MISSING' });
  const pre = path.join(dir, CAPTION_PREPROCESSOR_FILE);
  return parseCaptionConfig(await readJsonObject(file), file, existsSync(pre) ? { json: await readJsonObject(pre), file: pre } : undefined);
}

/** config.json as transformers writes it for `c` (every size spelled out). */
export function toHfCaptionConfigJson(c: CaptionConfig): Json {
  const v = c.vision;
  const t = c.text;
  const vision = {
    hidden_size: v.width,
    intermediate_size: v.intermediate,
    num_hidden_layers: v.layers,
    num_attention_heads: v.heads,
    num_channels: 3,
    image_size: v.imageSize,
    patch_size: v.patchSize,
    hidden_act: v.act,
    layer_norm_eps: v.lnEps,
  };
  const text = {
    vocab_size: t.vocabSize,
    hidden_size: t.width,
    intermediate_size: t.intermediate,
    num_hidden_layers: t.layers,
    num_attention_heads: t.heads,
    max_position_embeddings: t.maxPositions,
    hidden_act: 'gelu',
    layer_norm_eps: t.lnEps,
  };
  if (c.arch === 'blip') {
    return {
      architectures: ['BlipForConditionalGeneration'],
      model_type: 'blip',
      projection_dim: 512,
      image_text_hidden_size: 256,
      text_config: {
        model_type: 'blip_text_model',
        ...text,
        encoder_hidden_size: v.width,
        is_decoder: true,
        bos_token_id: c.tokens.bos,
        sep_token_id: c.tokens.eos,
        pad_token_id: c.tokens.pad,
        eos_token_id: 2,
      },
      vision_config: { model_type: 'blip_vision_model', ...vision },
      tie_word_embeddings: true,
      torch_dtype: 'float32',
    };
  }
  return {
    architectures: ['GitForCausalLM'],
    model_type: 'git',
    ...text,
    bos_token_id: c.tokens.bos,
    eos_token_id: c.tokens.eos,
    pad_token_id: c.tokens.pad,
    tie_word_embeddings: false,
    vision_config: { model_type: 'git_vision_model', ...vision },
    torch_dtype: 'float32',
  };
}

/** preprocessor_config.json as the model's processor reads it. */
export function toHfCaptionPreprocessorJson(c: CaptionConfig): Json {
  const common = {
    do_convert_rgb: true,
    do_normalize: true,
    do_rescale: true,
    do_resize: true,
    image_mean: [...c.image.mean],
    image_std: [...c.image.std],
    resample: 3,
    rescale_factor: 1 / 255,
  };
  if (c.image.processor === 'hf-pil-resize') {
    return { ...common, image_processor_type: 'BlipImageProcessor', processor_class: 'BlipProcessor', size: { height: c.image.size, width: c.image.size } };
  }
  return {
    ...common,
    do_center_crop: true,
    crop_size: { height: c.image.size, width: c.image.size },
    image_processor_type: 'CLIPImageProcessor',
    processor_class: 'GitProcessor',
    size: { shortest_edge: c.image.size },
  };
}

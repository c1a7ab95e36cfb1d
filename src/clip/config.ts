import { readJsonObject } from '../util/json-file.js';
import { promises as fs } from 'node:fs';
import { Img2PromptError, errorMessage } from '../util/errors.js';
import { Fields, isObject } from '../util/json-fields.js';

/**
 * One normalised description of a CLIP model (two ViT towers joined by projections), parsed from
 * either an open_clip model config (`model_configs/*.json`, or the `model_cfg` of a hub
 * `open_clip_config.json`) or a Hugging Face `CLIPModel` config.json. The graph builders, the weight
 * mapping and the random checkpoint generator all work from this shape only.
 */

export type ClipActivation = 'quick_gelu' | 'gelu';

/**
 * How the text tower picks the token whose state becomes the text embedding:
 * - 'argmax': the position of the largest token id (open_clip, OpenAI CLIP, HF configs with the
 *   legacy eos_token_id 2). The EOT id 49407 is the largest id in the CLIP vocabulary, so this is
 *   the first EOT whatever the padding (open_clip pads with 0, HF pads with 49407 itself).
 * - 'first-eot': the first position holding `eotTokenId` (HF configs with a real eos_token_id).
 * Both give the same position for every sequence the CLIP tokenizer produces.
 */
export type EotPooling = 'argmax' | 'first-eot';

export interface ClipVisionConfig {
  imageSize: number;
  patchSize: number;
  width: number;
  layers: number;
  heads: number;
  /** Hidden size of the MLP (open_clip: width × mlp_ratio; HF: intermediate_size). */
  intermediate: number;
  act: ClipActivation;
  lnEps: number;
}

export interface ClipTextConfig {
  contextLength: number;
  vocabSize: number;
  width: number;
  layers: number;
  heads: number;
  intermediate: number;
  act: ClipActivation;
  lnEps: number;
  eotPooling: EotPooling;
  eotTokenId: number;
}

export interface ClipConfig {
  /** Width of the joint embedding space (open_clip embed_dim, HF projection_dim). */
  embedDim: number;
  vision: ClipVisionConfig;
  text: ClipTextConfig;
  /** Per-channel RGB normalisation applied to pixels in [0, 1]. */
  imageMean: [number, number, number];
  imageStd: [number, number, number];
}

/** OpenAI's CLIP normalisation; open_clip uses it for its LAION models too. */
export const OPENAI_CLIP_MEAN: [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
export const OPENAI_CLIP_STD: [number, number, number] = [0.26862954, 0.26130258, 0.27577711];

export const CLIP_CONTEXT_LENGTH = 77;
export const CLIP_VOCAB_SIZE = 49408;
export const CLIP_SOT_ID = 49406;
export const CLIP_EOT_ID = 49407;

/** Number of patch tokens plus the class token. */
export function visionTokenCount(v: ClipVisionConfig): number {
  const grid = v.imageSize / v.patchSize;
  return grid * grid + 1;
}

/**
 * A CLIP small enough to run in float64 plain TypeScript within a test, keeping the real vocabulary
 * and context length so ids from the real tokenizer stay meaningful.
 */
export function tinyClipConfig(act: ClipActivation = 'quick_gelu'): ClipConfig {
  return {
    embedDim: 32,
    vision: { imageSize: 32, patchSize: 8, width: 64, layers: 2, heads: 4, intermediate: 256, act, lnEps: 1e-5 },
    text: {
      contextLength: CLIP_CONTEXT_LENGTH,
      vocabSize: CLIP_VOCAB_SIZE,
      width: 64,
      layers: 2,
      heads: 4,
      intermediate: 256,
      act,
      lnEps: 1e-5,
      eotPooling: 'argmax',
      eotTokenId: CLIP_EOT_ID,
    },
    imageMean: [...OPENAI_CLIP_MEAN],
    imageStd: [...OPENAI_CLIP_STD],
  };
}

type Json = Record<string, unknown>;

/** Structural checks shared by both parsers; a config that passes builds a consistent graph. */
export function validateClipConfig(c: ClipConfig, file: string | undefined = undefined): ClipConfig {
  const fail = (reason: string): never => {
    throw new Img2PromptError(file, reason, { code: 'FILE_INVALID' });
  };
  const v = c.vision;
  const t = c.text;
  if (v.imageSize % v.patchSize !== 0) fail(`image size ${v.imageSize} is not a multiple of patch size ${v.patchSize}`);
  if (v.width % v.heads !== 0) fail(`vision width ${v.width} is not divisible by ${v.heads} heads`);
  if (t.width % t.heads !== 0) fail(`text width ${t.width} is not divisible by ${t.heads} heads`);
  if (t.eotTokenId < 0 || t.eotTokenId >= t.vocabSize) fail(`EOT id ${t.eotTokenId} is outside the vocabulary of ${t.vocabSize}`);
  for (const [name, x] of Object.entries({ embedDim: c.embedDim, ...prefixed('vision', v), ...prefixed('text', t) })) {
    if (typeof x === 'number' && !(x > 0)) fail(`${name} must be positive, got ${x}`);
  }
  return c;
}

function prefixed(prefix: string, o: object): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).map(([k, x]) => [`${prefix}.${k}`, x]));
}

export interface OpenClipParseOptions {
  /**
   * Force QuickGELU (true) or GELU (false) in both towers. open_clip decides this at model-creation
   * time (the "-quickgelu" model names, or `force_quick_gelu`), so a bare architecture JSON such as
   * ViT-L-14.json does not say it: OpenAI-pretrained B-32/L-14 weights need QuickGELU.
   */
  quickGelu?: boolean;
}

/**
 * Parse an open_clip model config: either the architecture JSON itself ({embed_dim, vision_cfg,
 * text_cfg, quick_gelu?}) or a hub `open_clip_config.json` ({model_cfg, preprocess_cfg}).
 */
export function parseOpenClipConfig(json: unknown, file = '<open_clip config>', options: OpenClipParseOptions = {}): ClipConfig {
  if (!isObject(json)) throw new Img2PromptError(file, 'open_clip config is not a JSON object', { code: 'FILE_INVALID' });
  let model = json;
  let preprocess: Fields | undefined;
  if (isObject(json.model_cfg)) {
    model = json.model_cfg;
    if (isObject(json.preprocess_cfg)) preprocess = new Fields(json.preprocess_cfg, file, 'preprocess_cfg');
  }
  const where = model === json ? '' : 'model_cfg';
  const top = new Fields(model, file, where);
  if (!top.has('vision_cfg') || !top.has('text_cfg')) throw new Img2PromptError(file, 'not an open_clip model config: needs "vision_cfg" and "text_cfg"', { code: 'FILE_INVALID' });
  if (top.has('custom_text') && top.raw('custom_text') !== false) {
    // custom_text only changes the module layout (text.* prefixes); weights.ts handles the common layout.
    throw new Img2PromptError(file, 'unsupported open_clip config: "custom_text" towers', { code: 'FILE_INVALID' });
  }
  const act: ClipActivation = (options.quickGelu ?? top.bool('quick_gelu', false)) ? 'quick_gelu' : 'gelu';

  const vis = top.child('vision_cfg');
  for (const key of ['timm_model_name', 'hf_model_name']) vis.requireDefault(key, [], 'vision tower');
  vis.requireDefault('ls_init_value', [], 'layer scale');
  vis.requireDefault('attentional_pool', [false], 'attentional pooling');
  vis.requireDefault('no_ln_pre', [false], 'vision tower without ln_pre');
  vis.requireDefault('final_ln_after_pool', [false], 'final LN order');
  vis.requireDefault('pool_type', ['tok'], 'vision pooling');
  vis.requireDefault('global_average_pool', [false], 'vision pooling');
  vis.requireDefault('pos_embed_type', ['learnable'], 'vision positional embedding');
  const vWidth = vis.int('width', 768);
  const headWidth = vis.int('head_width', 64);
  if (vWidth % headWidth !== 0) throw new Img2PromptError(file, `vision width ${vWidth} is not a multiple of head_width ${headWidth}`, { code: 'FILE_INVALID' });

  const txt = top.child('text_cfg');
  for (const key of ['hf_model_name', 'hf_tokenizer_name']) txt.requireDefault(key, [], 'text tower');
  txt.requireDefault('ls_init_value', [], 'layer scale');
  txt.requireDefault('embed_cls', [false], 'text class token');
  txt.requireDefault('no_causal_mask', [false], 'text attention without causal mask');
  txt.requireDefault('final_ln_after_pool', [false], 'final LN order');
  txt.requireDefault('pool_type', ['argmax'], 'text pooling');
  txt.requireDefault('proj_bias', [false], 'text projection bias');
  txt.requireDefault('proj_type', ['linear'], 'text projection');
  const tWidth = txt.int('width', 512);

  const eps = (cfg: Fields): number => {
    if (!cfg.has('norm_kwargs')) return 1e-5;
    return cfg.child('norm_kwargs').num('eps', 1e-5);
  };
  const mean = preprocess?.rgb('mean') ?? OPENAI_CLIP_MEAN;
  const std = preprocess?.rgb('std') ?? OPENAI_CLIP_STD;
  return validateClipConfig(
    {
      embedDim: top.int('embed_dim'),
      vision: {
        imageSize: vis.squareSize('image_size', 224),
        patchSize: vis.int('patch_size', 16),
        width: vWidth,
        layers: vis.int('layers', 12),
        heads: vWidth / headWidth,
        intermediate: mlpWidth(vWidth, vis.num('mlp_ratio', 4)),
        act,
        lnEps: eps(vis),
      },
      text: {
        contextLength: txt.int('context_length', CLIP_CONTEXT_LENGTH),
        vocabSize: txt.int('vocab_size', CLIP_VOCAB_SIZE),
        width: tWidth,
        layers: txt.int('layers', 12),
        heads: txt.int('heads', 8),
        intermediate: mlpWidth(tWidth, txt.num('mlp_ratio', 4)),
        act,
        lnEps: eps(txt),
        eotPooling: 'argmax',
        eotTokenId: CLIP_EOT_ID,
      },
      imageMean: [...mean],
      imageStd: [...std],
    },
    file,
  );
}

/** open_clip's int(width · mlp_ratio), immune to a product like 319.99999999 from a ratio written as 2.5. */
function mlpWidth(width: number, ratio: number): number {
  return Math.trunc(width * ratio + 1e-6);
}

function hfActivation(f: Fields, file: string): ClipActivation {
  const v = f.raw('hidden_act') ?? 'quick_gelu';
  if (v === 'quick_gelu') return 'quick_gelu';
  // HF's "gelu" is the exact erf GELU, as is open_clip's nn.GELU.
  if (v === 'gelu') return 'gelu';
  throw new Img2PromptError(file, `unsupported hidden_act ${JSON.stringify(v)} (only "quick_gelu" and "gelu")`, { code: 'FILE_INVALID' });
}

/**
 * Parse a Hugging Face CLIPModel config.json. Missing keys take transformers' defaults (which are
 * ViT-B/32's), because recent transformers versions write only the keys that differ from them.
 */
export function parseHfClipConfig(
  json: unknown,
  file = '<config.json>',
  preprocessor?: { json: Json; file: string },
): ClipConfig {
  if (!isObject(json)) throw new Img2PromptError(file, 'CLIP config is not a JSON object', { code: 'FILE_INVALID' });
  const top = new Fields(json, file, '');
  if (!top.has('vision_config') || !top.has('text_config')) {
    throw new Img2PromptError(file, 'not a CLIPModel config: needs "vision_config" and "text_config"', { code: 'FILE_INVALID' });
  }
  if (json.model_type !== undefined && json.model_type !== 'clip') {
    throw new Img2PromptError(file, `unsupported model_type ${JSON.stringify(json.model_type)} (only "clip")`, { code: 'FILE_INVALID' });
  }
  const vis = top.child('vision_config');
  const txt = top.child('text_config');
  vis.requireDefault('num_channels', [3], 'vision input');
  const eotTokenId = txt.has('eos_token_id') ? txt.raw('eos_token_id') : CLIP_EOT_ID;
  if (!Number.isInteger(eotTokenId)) throw new Img2PromptError(file, `"text_config.eos_token_id" must be an integer, got ${JSON.stringify(eotTokenId)}`, { code: 'FILE_INVALID' });
  // transformers keeps argmax pooling for configs saved with the old, wrong eos_token_id of 2.
  const legacy = eotTokenId === 2;
  const pre = preprocessor ? new Fields(preprocessor.json, preprocessor.file, '') : undefined;
  return validateClipConfig(
    {
      embedDim: top.int('projection_dim', 512),
      vision: {
        imageSize: vis.squareSize('image_size', 224),
        patchSize: vis.int('patch_size', 32),
        width: vis.int('hidden_size', 768),
        layers: vis.int('num_hidden_layers', 12),
        heads: vis.int('num_attention_heads', 12),
        intermediate: vis.int('intermediate_size', 3072),
        act: hfActivation(vis, file),
        lnEps: vis.num('layer_norm_eps', 1e-5),
      },
      text: {
        contextLength: txt.int('max_position_embeddings', CLIP_CONTEXT_LENGTH),
        vocabSize: txt.int('vocab_size', CLIP_VOCAB_SIZE),
        width: txt.int('hidden_size', 512),
        layers: txt.int('num_hidden_layers', 12),
        heads: txt.int('num_attention_heads', 8),
        intermediate: txt.int('intermediate_size', 2048),
        act: hfActivation(txt, file),
        lnEps: txt.num('layer_norm_eps', 1e-5),
        eotPooling: legacy ? 'argmax' : 'first-eot',
        eotTokenId: legacy ? CLIP_EOT_ID : (eotTokenId as number),
      },
      imageMean: [...(pre?.rgb('image_mean') ?? OPENAI_CLIP_MEAN)],
      imageStd: [...(pre?.rgb('image_std') ?? OPENAI_CLIP_STD)],
    },
    file,
  );
}

/** The open_clip architecture JSON for a config (as in open_clip's model_configs, plus quick_gelu). */
export function toOpenClipConfigJson(c: ClipConfig): Json {
  const v = c.vision;
  const t = c.text;
  if (v.act !== t.act) throw new Img2PromptError(undefined, 'open_clip configs use one activation for both towers', { code: 'FILE_INVALID' });
  if (t.eotPooling !== 'argmax') throw new Img2PromptError(undefined, 'open_clip text towers pool by argmax', { code: 'FILE_INVALID' });
  const normKwargs = (eps: number) => (eps === 1e-5 ? {} : { norm_kwargs: { eps } });
  return {
    embed_dim: c.embedDim,
    quick_gelu: v.act === 'quick_gelu',
    vision_cfg: {
      image_size: v.imageSize,
      layers: v.layers,
      width: v.width,
      head_width: v.width / v.heads,
      mlp_ratio: v.intermediate / v.width,
      patch_size: v.patchSize,
      ...normKwargs(v.lnEps),
    },
    text_cfg: {
      context_length: t.contextLength,
      vocab_size: t.vocabSize,
      width: t.width,
      heads: t.heads,
      layers: t.layers,
      mlp_ratio: t.intermediate / t.width,
      ...normKwargs(t.lnEps),
    },
  };
}

/** A hub-style open_clip_config.json: the architecture plus the preprocessing. */
export function toOpenClipHubConfigJson(c: ClipConfig): Json {
  return {
    model_cfg: toOpenClipConfigJson(c),
    preprocess_cfg: { mean: [...c.imageMean], std: [...c.imageStd] },
  };
}

/** A Hugging Face CLIPModel config.json for a config. */
export function toHfClipConfigJson(c: ClipConfig): Json {
  const v = c.vision;
  const t = c.text;
  return {
    architectures: ['CLIPModel'],
    model_type: 'clip',
    projection_dim: c.embedDim,
    logit_scale_init_value: 2.6592,
    text_config: {
      model_type: 'clip_text_model',
      hidden_size: t.width,
      intermediate_size: t.intermediate,
      num_attention_heads: t.heads,
      num_hidden_layers: t.layers,
      max_position_embeddings: t.contextLength,
      vocab_size: t.vocabSize,
      hidden_act: t.act,
      layer_norm_eps: t.lnEps,
      projection_dim: c.embedDim,
      bos_token_id: 49406,
      // 2 is how transformers spells "pool by argmax" (see parseHfClipConfig).
      eos_token_id: t.eotPooling === 'argmax' ? 2 : t.eotTokenId,
      pad_token_id: 1,
    },
    vision_config: {
      model_type: 'clip_vision_model',
      hidden_size: v.width,
      intermediate_size: v.intermediate,
      num_attention_heads: v.heads,
      num_hidden_layers: v.layers,
      image_size: v.imageSize,
      patch_size: v.patchSize,
      num_channels: 3,
      hidden_act: v.act,
      layer_norm_eps: v.lnEps,
      projection_dim: c.embedDim,
    },
    torch_dtype: 'float32',
  };
}

/** HF preprocessor_config.json carrying the normalisation (resize/crop at the vision image size). */
export function toHfPreprocessorJson(c: ClipConfig): Json {
  return {
    crop_size: c.vision.imageSize,
    do_center_crop: true,
    do_normalize: true,
    do_resize: true,
    feature_extractor_type: 'CLIPFeatureExtractor',
    image_mean: [...c.imageMean],
    image_std: [...c.imageStd],
    resample: 3,
    size: c.vision.imageSize,
  };
}

export { readJsonObject } from '../util/json-file.js';

/** Read an open_clip config file (architecture JSON or hub open_clip_config.json). */
export async function loadOpenClipConfig(file: string, options: OpenClipParseOptions = {}): Promise<ClipConfig> {
  return parseOpenClipConfig(await readJsonObject(file), file, options);
}

/** Read a HF config.json, with the normalisation from a preprocessor_config.json when given. */
export async function loadHfClipConfig(file: string, preprocessorFile?: string): Promise<ClipConfig> {
  const pre = preprocessorFile ? { json: await readJsonObject(preprocessorFile), file: preprocessorFile } : undefined;
  return parseHfClipConfig(await readJsonObject(file), file, pre);
}

// @huggingface/transformers (transformers.js, Node build on onnxruntime-node) as the peer of our CLIP
// vision tower: the very same vision.onnx, loaded the way transformers.js loads a Hub CLIP export, so a
// timing difference is runtime overhead, not a different graph.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { AutoImageProcessor, CLIPVisionModelWithProjection, RawImage, Tensor, env } from '@huggingface/transformers';
import type { ClipConfig } from '../src/clip/config.js';
import type { DecodedImage } from '../src/image/decode.js';

export interface TransformersPeer {
  /** transformers.js's own package version. */
  readonly version: string;
  /** Folder transformers.js loads from (config.json, preprocessor_config.json, onnx/vision_model.onnx). */
  readonly dir: string;
  /** The model forward on preprocessed pixels [batch, 3, N, N]; returns `image_embeds`. */
  forward(pixels: Float32Array, batch: number): Promise<Float32Array>;
  /** transformers.js's CLIPImageProcessor on one decoded image → [3, N, N]. */
  preprocess(image: DecodedImage): Promise<Float32Array>;
  dispose(): Promise<void>;
}

/** A Hugging Face CLIPModel config.json for `config` (transformers.js reads `model_type` and the sizes). */
function hfConfigJson(config: ClipConfig): Record<string, unknown> {
  const v = config.vision;
  const t = config.text;
  return {
    architectures: ['CLIPModel'],
    model_type: 'clip',
    projection_dim: config.embedDim,
    vision_config: {
      model_type: 'clip_vision_model',
      hidden_size: v.width,
      intermediate_size: v.intermediate,
      num_hidden_layers: v.layers,
      num_attention_heads: v.heads,
      image_size: v.imageSize,
      patch_size: v.patchSize,
      hidden_act: v.act,
      layer_norm_eps: v.lnEps,
      projection_dim: config.embedDim,
    },
    text_config: {
      model_type: 'clip_text_model',
      hidden_size: t.width,
      intermediate_size: t.intermediate,
      num_hidden_layers: t.layers,
      num_attention_heads: t.heads,
      max_position_embeddings: t.contextLength,
      vocab_size: t.vocabSize,
      hidden_act: t.act,
      layer_norm_eps: t.lnEps,
      projection_dim: config.embedDim,
    },
  };
}

/** CLIPImageProcessor settings equal to our ClipTransform's: shortest edge → N bicubic, centre crop N, normalise. */
function preprocessorJson(config: ClipConfig): Record<string, unknown> {
  const n = config.vision.imageSize;
  return {
    image_processor_type: 'CLIPImageProcessor',
    do_convert_rgb: true,
    do_resize: true,
    size: { shortest_edge: n },
    resample: 3,
    do_center_crop: true,
    crop_size: { height: n, width: n },
    do_rescale: true,
    rescale_factor: 1 / 255,
    do_normalize: true,
    image_mean: config.imageMean,
    image_std: config.imageStd,
  };
}

/** Lays out `<root>/<name>/` as transformers.js expects a CLIP repo, the ONNX file a symlink to ours. */
export async function writePeerFolder(root: string, name: string, config: ClipConfig, visionOnnx: string): Promise<string> {
  const dir = path.join(root, name);
  await fs.mkdir(path.join(dir, 'onnx'), { recursive: true });
  await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify(hfConfigJson(config), null, 2) + '\n');
  await fs.writeFile(path.join(dir, 'preprocessor_config.json'), JSON.stringify(preprocessorJson(config), null, 2) + '\n');
  const link = path.join(dir, 'onnx', 'vision_model.onnx');
  await fs.rm(link, { force: true });
  await fs.symlink(path.resolve(visionOnnx), link);
  return dir;
}

/**
 * Opens `visionOnnx` through CLIPVisionModelWithProjection.from_pretrained with remote models off, on
 * the CPU with `threads` intra-op threads (the same session options our Session gets).
 */
export async function openTransformersPeer(options: {
  root: string;
  name: string;
  config: ClipConfig;
  visionOnnx: string;
  threads: number;
}): Promise<TransformersPeer> {
  const dir = await writePeerFolder(options.root, options.name, options.config, options.visionOnnx);
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = options.root + path.sep;
  // Nothing is downloaded, so nothing needs caching (the default cache lives inside node_modules).
  env.useFSCache = false;
  const model = await CLIPVisionModelWithProjection.from_pretrained(options.name, {
    local_files_only: true,
    device: 'cpu',
    dtype: 'fp32',
    session_options: {
      intraOpNumThreads: options.threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    },
  });
  const processor = await AutoImageProcessor.from_pretrained(options.name, { local_files_only: true });
  const n = options.config.vision.imageSize;
  return {
    version: env.version,
    dir,
    async forward(pixels, batch) {
      const input = new Tensor('float32', pixels.subarray(0, batch * 3 * n * n), [batch, 3, n, n]);
      const out = (await model({ pixel_values: input })) as { image_embeds: { data: Float32Array } };
      return out.image_embeds.data;
    },
    async preprocess(image) {
      const raw = new RawImage(new Uint8ClampedArray(image.data.buffer, image.data.byteOffset, image.data.length), image.width, image.height, 3);
      const { pixel_values } = (await processor(raw)) as { pixel_values: { data: Float32Array } };
      return pixel_values.data;
    },
    async dispose() {
      await model.dispose();
    },
  };
}

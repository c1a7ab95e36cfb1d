// @huggingface/transformers (transformers.js, Node build on onnxruntime-node) as the peer of our CLIP
// towers: the very same vision.onnx and text.onnx, loaded the way transformers.js loads a Hub CLIP
// export, so a timing difference is runtime overhead, not a different graph.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { AutoImageProcessor, CLIPTextModelWithProjection, CLIPVisionModelWithProjection, RawImage, Tensor, env } from '@huggingface/transformers';
import type { ClipConfig } from '../src/clip/config.js';
import { normaliseTowerRows } from '../src/clip/model.js';
import { padClipBatch, padIdFor, type ClipTokenizer } from '../src/clip/tokenizer.js';
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

/** The ONNX files a transformers.js CLIP folder can hold, named as its from_pretrained looks for them. */
export interface PeerOnnx {
  /** Linked as onnx/vision_model.onnx (CLIPVisionModelWithProjection's default model_file_name). */
  vision?: string;
  /** Linked as onnx/text_model.onnx (CLIPTextModelWithProjection's default model_file_name). */
  text?: string;
}

/** Lays out `<root>/<name>/` as transformers.js expects a CLIP repo, the ONNX files symlinks to ours. */
export async function writePeerFolder(root: string, name: string, config: ClipConfig, onnx: PeerOnnx): Promise<string> {
  const dir = path.join(root, name);
  await fs.mkdir(path.join(dir, 'onnx'), { recursive: true });
  await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify(hfConfigJson(config), null, 2) + '\n');
  await fs.writeFile(path.join(dir, 'preprocessor_config.json'), JSON.stringify(preprocessorJson(config), null, 2) + '\n');
  const links: [string, string | undefined][] = [
    ['vision_model.onnx', onnx.vision],
    ['text_model.onnx', onnx.text],
  ];
  for (const [file, target] of links) {
    if (target === undefined) continue;
    const link = path.join(dir, 'onnx', file);
    await fs.rm(link, { force: true });
    await fs.symlink(path.resolve(target), link);
  }
  return dir;
}

/** Local files only, nothing fetched or cached; the same CPU session options our Session gets. */
function loadOptions(threads: number) {
  return {
    local_files_only: true,
    device: 'cpu',
    dtype: 'fp32',
    session_options: {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    },
  } as const;
}

function pointEnvAt(root: string): void {
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = root + path.sep;
  // Nothing is downloaded, so nothing needs caching (the default cache lives inside node_modules).
  env.useFSCache = false;
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
  const dir = await writePeerFolder(options.root, options.name, options.config, { vision: options.visionOnnx });
  pointEnvAt(options.root);
  const model = await CLIPVisionModelWithProjection.from_pretrained(options.name, loadOptions(options.threads));
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

export interface TransformersTextPeer {
  /** transformers.js's own package version. */
  readonly version: string;
  /** Folder transformers.js loads from (config.json, onnx/text_model.onnx). */
  readonly dir: string;
  /** The graph's inputs as transformers.js's session reports them (input_ids, maybe attention_mask). */
  readonly inputNames: readonly string[];
  /** The model forward on right-padded ids [batch, seqLen] (mask only if the graph takes one); returns `text_embeds`. */
  forward(inputIds: BigInt64Array, attentionMask: BigInt64Array | undefined, batch: number, seqLen: number): Promise<Float32Array>;
  /**
   * ClipModel.encodeTexts with transformers.js in place of our Session: the same tokenizer, the same
   * length sort and padding (dynamic: each batch to its longest; fixed: to the context length), the
   * same row normalisation, so the only difference left is the runtime that runs the graph.
   */
  encodeTexts(texts: readonly string[], options: { batchSize: number; padding: 'dynamic' | 'fixed' }): Promise<Float32Array>;
  dispose(): Promise<void>;
}

/**
 * Opens `textOnnx` through CLIPTextModelWithProjection.from_pretrained with remote models off, on the
 * CPU with `threads` intra-op threads; `tokenizer` is ours (transformers.js gets the token ids).
 */
export async function openTransformersTextPeer(options: {
  root: string;
  name: string;
  config: ClipConfig;
  textOnnx: string;
  tokenizer: ClipTokenizer;
  threads: number;
}): Promise<TransformersTextPeer> {
  const dir = await writePeerFolder(options.root, options.name, options.config, { text: options.textOnnx });
  pointEnvAt(options.root);
  const model = await CLIPTextModelWithProjection.from_pretrained(options.name, loadOptions(options.threads));
  const session = (model as unknown as { sessions: Record<string, { inputNames: string[] }> }).sessions.model;
  if (!session) throw new Error(`transformers.js opened ${dir} without a "model" session`);
  const inputNames = [...session.inputNames];
  const wantsMask = inputNames.includes('attention_mask');
  const dim = options.config.embedDim;
  const contextLength = options.config.text.contextLength;
  const tokenizer = options.tokenizer;

  const forward = async (inputIds: BigInt64Array, attentionMask: BigInt64Array | undefined, batch: number, seqLen: number) => {
    const feeds: Record<string, Tensor> = { input_ids: new Tensor('int64', inputIds, [batch, seqLen]) };
    if (wantsMask) {
      if (!attentionMask) throw new Error('this text graph takes an attention_mask');
      feeds.attention_mask = new Tensor('int64', attentionMask, [batch, seqLen]);
    }
    const out = (await model(feeds)) as { text_embeds?: { data: Float32Array } };
    if (!out.text_embeds) throw new Error(`transformers.js returned no text_embeds (outputs: ${Object.keys(out).join(', ')})`);
    return out.text_embeds.data;
  };

  return {
    version: env.version,
    dir,
    inputNames,
    forward,
    async encodeTexts(texts, { batchSize, padding }) {
      const dynamic = padding === 'dynamic';
      const seqs = texts.map((t) => tokenizer.encode(t));
      const order = seqs.map((_, i) => i);
      if (dynamic) order.sort((a, b) => seqs[a]!.length - seqs[b]!.length || a - b);
      const out = new Float32Array(texts.length * dim);
      const padId = padIdFor('open_clip');
      for (let start = 0; start < order.length; start += batchSize) {
        const rows = order.slice(start, start + batchSize);
        const batch = padClipBatch(
          rows.map((r) => seqs[r]!),
          dynamic ? 'longest' : contextLength,
          padId,
        );
        let mask: BigInt64Array | undefined;
        if (wantsMask) {
          mask = new BigInt64Array(batch.batch * batch.seqLen);
          rows.forEach((r, i) => mask!.fill(1n, i * batch.seqLen, i * batch.seqLen + seqs[r]!.length));
        }
        const emb = normaliseTowerRows(await forward(batch.inputIds, mask, batch.batch, batch.seqLen), dim);
        rows.forEach((r, i) => out.set(emb.subarray(i * dim, (i + 1) * dim), r * dim));
      }
      return out;
    },
    async dispose() {
      await model.dispose();
    },
  };
}

/**
 * How a user's ONNX image model wants its pixels, written down next to the model: a JSON file beside
 * it (`vit.onnx` → `vit.json`) or the same JSON in the model's metadata under the key
 * `img2prompt.preprocessing`. The resize and crop are one of the reference pipelines ClipTransform
 * reproduces (image-processor.ts), so a model exported from PyTorch sees the pixels it was trained on:
 *
 *   {
 *     "size": 224,                      input side N: the model takes [batch, 3, N, N] float32
 *     "resize": "open_clip",            open_clip: shortest side to N (bicubic), centre crop N×N;
 *                                       hf, hf-pil: transformers' resize + centre crop;
 *                                       hf-pil-resize: the whole image to N×N, nothing cropped
 *     "mean": [0.485, 0.456, 0.406],    per channel, R, G, B, on pixels scaled to 0..1
 *     "std":  [0.229, 0.224, 0.225],    (a model fed 0..255 values: mean [0,0,0], std [1/255, …])
 *     "channelOrder": "rgb",            or "bgr": the planes go in B, G, R order (mean/std still R, G, B)
 *     "input": "pixel_values",          optional: the image input (default: the only input)
 *     "output": "embedding"             optional: the 384-d output (default: the only output)
 *   }
 *
 * size, mean and std have no defaults: a wrong guess would not fail, it would quietly give worse vectors.
 */
import { existsSync, promises as fs } from 'node:fs';
import { Img2PromptError, errorMessage } from '../util/errors.js';
import { readOptions } from '../util/options.js';
import { readOnnxMetadata } from '../runtime/onnx-metadata.js';
import { CLIP_IMAGE_PROCESSORS, type ClipImageProcessor } from './image-processor.js';

export const CHANNEL_ORDERS = ['rgb', 'bgr'] as const;
export type ChannelOrder = (typeof CHANNEL_ORDERS)[number];

/** The metadata key whose value is the description, for models that carry it inside. */
export const PREPROCESSING_METADATA_KEY = 'img2prompt.preprocessing';

export interface ImagePreprocessing {
  size: number;
  resize: ClipImageProcessor;
  mean: [number, number, number];
  std: [number, number, number];
  channelOrder: ChannelOrder;
  input?: string;
  output?: string;
}

/** Where a description was found: `file` names it in messages (the JSON file, or the model for metadata). */
export interface PreprocessingSource {
  file: string;
  /** Words for messages: 'vit.json' or 'metadata "img2prompt.preprocessing" of vit.onnx'. */
  where: string;
}

function triple(value: unknown): value is [number, number, number] {
  return Array.isArray(value) && value.length === 3 && value.every((x) => typeof x === 'number' && Number.isFinite(x));
}

/** `value` (parsed JSON) checked as a description; `source` names it in the errors. */
export function checkPreprocessing(value: unknown, source: PreprocessingSource): ImagePreprocessing {
  try {
    const o = readOptions(value, 'preprocessing');
    const size = o.required('size', o.int('size', { min: 1, max: 8192 }), 'an integer between 1 and 8192');
    const resize = o.oneOf('resize', CLIP_IMAGE_PROCESSORS) ?? 'open_clip';
    const mean = o.required('mean', o.check('mean', triple, 'three finite numbers (R, G, B)'), 'three finite numbers (R, G, B)');
    const std = o.required('std', o.check('std', triple, 'three positive numbers (R, G, B)'), 'three positive numbers (R, G, B)');
    if (!std.every((x) => x > 0)) throw o.rangeError('std', 'three positive numbers (R, G, B)', std);
    const channelOrder = o.oneOf('channelOrder', CHANNEL_ORDERS) ?? 'rgb';
    const input = o.string('input', { nonEmpty: true });
    const output = o.string('output', { nonEmpty: true });
    o.done();
    return { size, resize, mean: [...mean], std: [...std], channelOrder, ...(input ? { input } : {}), ...(output ? { output } : {}) };
  } catch (err) {
    if (!(err instanceof TypeError || err instanceof RangeError)) throw err;
    throw new Img2PromptError(source.file, `${source.where}: ${err.message}`, { code: 'FILE_INVALID', cause: err });
  }
}

/** The sidecar description of `model`: the same path with .json for .onnx (`vit.onnx` → `vit.json`). */
export function sidecarOf(model: string): string {
  return `${model.replace(/\.onnx$/i, '')}.json`;
}

/**
 * The description of the model `model`: its sidecar JSON file when there is one, else the
 * `img2prompt.preprocessing` entry of its metadata; neither is an error saying where to put one.
 */
export async function readPreprocessing(model: string): Promise<{ preprocessing: ImagePreprocessing; source: PreprocessingSource }> {
  const sidecar = sidecarOf(model);
  if (existsSync(sidecar)) {
    const source = { file: sidecar, where: 'preprocessing description' };
    let parsed: unknown;
    try {
      parsed = JSON.parse(await fs.readFile(sidecar, 'utf8'));
    } catch (err) {
      throw new Img2PromptError(sidecar, `cannot read the preprocessing description of ${model}: ${errorMessage(err)}`, { code: 'FILE_INVALID', cause: err });
    }
    return { preprocessing: checkPreprocessing(parsed, source), source };
  }
  const text = (await readOnnxMetadata(model)).get(PREPROCESSING_METADATA_KEY);
  if (text === undefined) {
    throw new Img2PromptError(
      model,
      `no preprocessing description: write one to ${sidecar} or into the model's metadata under "${PREPROCESSING_METADATA_KEY}" (size, resize, mean, std, channelOrder; see the README)`,
      { code: 'FILE_INVALID' },
    );
  }
  const source = { file: model, where: `metadata "${PREPROCESSING_METADATA_KEY}"` };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new Img2PromptError(model, `${source.where} is not JSON: ${errorMessage(err)}`, { code: 'FILE_INVALID', cause: err });
  }
  return { preprocessing: checkPreprocessing(parsed, source), source };
}

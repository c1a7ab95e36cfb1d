import { promises as fs, existsSync } from 'node:fs';
import path from 'node:path';
import { Img2PromptError, errorMessage } from '../util/errors.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { sha256File } from '../models/sha256.js';
import { loadClipCheckpoint, type ClipLayout, type LoadClipCheckpointOptions } from './weights.js';
import { CLIP_CHECKPOINT_FILES, CLIP_WEIGHTS_FILE_NAMES, findClipWeightsFile } from './checkpoint-files.js';
import { loadHfClipConfig, loadOpenClipConfig, type ClipConfig } from './config.js';
import { clipVisionGraphBuilder } from '../../models/graph/clip-vision.js';
import { CLIP_TEXT_PREFIX_GRAPH_VERSION, clipTextGraphBuilder, clipTextPrefixGraphBuilder } from '../../models/graph/clip-text.js';
import { exportWeightHash, findClipExport } from './onnx-export.js';
import type { Precision } from '../runtime/precision.js';

/** Bump when the graph builders change what they emit, so cached graphs are rebuilt. */
export const CLIP_GRAPH_VERSION = 1;
export const VISION_ONNX = 'vision.onnx';
export const TEXT_ONNX = 'text.onnx';
export const TEXT_PREFIX_ONNX = 'text-prefix.onnx';
const SIDECAR = 'clip-onnx.json';
const PREFIX_SIDECAR = 'clip-text-prefix.json';

/**
 * The built graphs of one precision: fp32 keeps the names it always had (vision.onnx, text.onnx,
 * clip-onnx.json); fp16 gets vision.fp16.onnx, text.fp16.onnx and clip-onnx.fp16.json beside them,
 * so switching precision never rebuilds the other one.
 */
export function builtGraphNames(precision: Precision): { vision: string; text: string; sidecar: string } {
  if (precision === 'fp32') return { vision: VISION_ONNX, text: TEXT_ONNX, sidecar: SIDECAR };
  return { vision: `vision.${precision}.onnx`, text: `text.${precision}.onnx`, sidecar: `clip-onnx.${precision}.json` };
}

export interface ClipOnnxFiles {
  /** 'built': graphs we built from a safetensors or torch.save checkpoint; 'export': ready ONNX files from elsewhere. */
  kind: 'built' | 'export';
  vision: string;
  text: string;
  config: ClipConfig;
  /** The precision of built graphs; undefined for an export, which runs as it was exported. */
  precision: Precision | undefined;
  /**
   * Whose conventions the checkpoint follows, open_clip's or transformers' (for an export: whose config
   * it came with). Its text is tokenized, and its images preprocessed, the way that library does it.
   */
  layout: ClipLayout;
  /**
   * sha256 identifying the weights (label-bank caches are rebuilt when it changes): of the weights
   * file for built graphs; for an export, over both towers' .onnx files and their external data.
   */
  weightHash: string;
}

interface Sidecar {
  graphVersion: number;
  weightsFile: string;
  weightsSize: number;
  weightsMtimeMs: number;
  weightsSha256: string;
  quickGelu: boolean | null;
  /** Absent in sidecars written before the layout was recorded: those graphs are rebuilt once. */
  layout?: ClipLayout;
  config: ClipConfig;
}

async function readSidecar(file: string): Promise<Sidecar | undefined> {
  try {
    return JSON.parse(await fs.readFile(file, 'utf8')) as Sidecar;
  } catch {
    return undefined;
  }
}

/** An export's config and layout: an HF config.json makes it a transformers model, else open_clip's. */
async function exportConfig(dir: string): Promise<{ config: ClipConfig; layout: ClipLayout }> {
  const hf = path.join(dir, CLIP_CHECKPOINT_FILES.hf.config);
  const pre = path.join(dir, CLIP_CHECKPOINT_FILES.hf.preprocessor);
  if (existsSync(hf)) return { config: await loadHfClipConfig(hf, existsSync(pre) ? pre : undefined), layout: 'hf' };
  const oc = path.join(dir, CLIP_CHECKPOINT_FILES.open_clip.config);
  if (existsSync(oc)) return { config: await loadOpenClipConfig(oc), layout: 'open_clip' };
  throw new Img2PromptError(dir, 'ONNX export found but no config.json to read the image size and normalisation from');
}

/**
 * The vision and text ONNX graphs of the CLIP model in `dir`: a ready export when the folder has one,
 * else graphs built from its safetensors or torch.save checkpoint once and cached beside the weights. The cache is
 * rebuilt when the weights file changes (size or mtime, then hash) or the builders change.
 */
export interface EnsureClipOnnxOptions extends LoadClipCheckpointOptions {
  /** Weight bytes above which a tower is written with external data (default 1.5 GiB; tests set it low). */
  externalAbove?: number;
  /** Precision of graphs built from a checkpoint (default fp32); ignored for a ready export. */
  precision?: Precision;
}

export async function ensureClipOnnx(dir: string, options: EnsureClipOnnxOptions = {}): Promise<ClipOnnxFiles> {
  const weightsFile = await findClipWeightsFile(dir);
  const exported = weightsFile ? undefined : await findClipExport(dir);
  if (exported) {
    const { config, layout } = await exportConfig(dir);
    return { kind: 'export', vision: exported.vision.file, text: exported.text.file, config, layout, precision: undefined, weightHash: await exportWeightHash(dir, exported) };
  }
  if (!weightsFile) {
    throw new Img2PromptError(dir, `no CLIP model here: expected ${CLIP_WEIGHTS_FILE_NAMES.join(', ')} (or one .safetensors, .pt or .pth file) or vision_model.onnx + text_model.onnx`);
  }
  const precision = options.precision ?? 'fp32';
  const names = builtGraphNames(precision);
  const vision = path.join(dir, names.vision);
  const text = path.join(dir, names.text);
  const sidecarFile = path.join(dir, names.sidecar);
  const stat = await fs.stat(weightsFile);
  const quickGelu = options.quickGelu ?? null;
  const side = await readSidecar(sidecarFile);
  const fresh =
    side &&
    side.graphVersion === CLIP_GRAPH_VERSION &&
    side.weightsFile === path.basename(weightsFile) &&
    side.weightsSize === stat.size &&
    side.weightsMtimeMs === stat.mtimeMs &&
    side.quickGelu === quickGelu &&
    // Caches written before the layout was recorded are rebuilt once.
    (side.layout === 'open_clip' || side.layout === 'hf') &&
    existsSync(vision) &&
    existsSync(text);
  if (fresh && side.layout) return { kind: 'built', vision, text, config: side.config, layout: side.layout, precision, weightHash: side.weightsSha256 };

  const weightsSha256 = await sha256File(weightsFile);
  const ckpt = await loadClipCheckpoint(dir, options);
  try {
    // Towers over ~1.5 GiB (ViT-H-14's image tower) go out with ONNX external data beside them.
    await clipVisionGraphBuilder(ckpt.config, ckpt.weights, precision).writeModel(vision, { externalAbove: options.externalAbove });
    await clipTextGraphBuilder(ckpt.config, ckpt.weights, precision).writeModel(text, { externalAbove: options.externalAbove });
  } catch (err) {
    if (err instanceof Img2PromptError) throw err;
    throw new Img2PromptError(dir, `cannot build the CLIP ONNX graphs: ${errorMessage(err)}`, { cause: err });
  }
  const record: Sidecar = {
    graphVersion: CLIP_GRAPH_VERSION,
    weightsFile: path.basename(weightsFile),
    weightsSize: stat.size,
    weightsMtimeMs: stat.mtimeMs,
    weightsSha256,
    quickGelu,
    layout: ckpt.layout,
    config: ckpt.config,
  };
  await writeFileAtomic(sidecarFile, JSON.stringify(record, null, 2) + '\n');
  return { kind: 'built', vision, text, config: ckpt.config, layout: ckpt.layout, precision, weightHash: weightsSha256 };
}

interface PrefixSidecar {
  graphVersion: number;
  weightsSha256: string;
  quickGelu: boolean | null;
}

/**
 * The prefix-cached text graph (what greedy chains run on, see ClipPrefixEncoder), built from the same
 * checkpoint as `files` on first use and kept beside text.onnx; undefined for a ready ONNX export,
 * whose folder has no checkpoint to build it from. Only best and negative modes need it, so other
 * jobs never pay for building it.
 */
export async function ensureClipTextPrefixOnnx(dir: string, files: ClipOnnxFiles, options: EnsureClipOnnxOptions = {}): Promise<string | undefined> {
  if (files.kind !== 'built') return undefined;
  const file = path.join(dir, TEXT_PREFIX_ONNX);
  const sidecarFile = path.join(dir, PREFIX_SIDECAR);
  const quickGelu = options.quickGelu ?? null;
  const wanted: PrefixSidecar = { graphVersion: CLIP_TEXT_PREFIX_GRAPH_VERSION, weightsSha256: files.weightHash, quickGelu };
  let side: Partial<PrefixSidecar> | undefined;
  try {
    side = JSON.parse(await fs.readFile(sidecarFile, 'utf8')) as Partial<PrefixSidecar>;
  } catch {
    side = undefined;
  }
  const fresh = side && side.graphVersion === wanted.graphVersion && side.weightsSha256 === wanted.weightsSha256 && side.quickGelu === quickGelu && existsSync(file);
  if (fresh) return file;
  const ckpt = await loadClipCheckpoint(dir, options);
  try {
    await clipTextPrefixGraphBuilder(ckpt.config, ckpt.weights).writeModel(file, { externalAbove: options.externalAbove });
  } catch (err) {
    if (err instanceof Img2PromptError) throw err;
    throw new Img2PromptError(dir, `cannot build the prefix-cached CLIP text graph: ${errorMessage(err)}`, { cause: err });
  }
  await writeFileAtomic(sidecarFile, JSON.stringify(wanted, null, 2) + '\n');
  return file;
}

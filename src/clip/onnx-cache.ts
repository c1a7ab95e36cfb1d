import { promises as fs, existsSync } from 'node:fs';
import path from 'node:path';
import { Img2PromptError, errorMessage } from '../util/errors.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { readInstallRecord, reinstallHint, type InstallRecord } from '../models/cache.js';
import { checkBuiltFiles, rebuildNotice, recordBuiltFiles, stampedHash, type BuiltFile, type CheckDepth, type StampedHash } from '../models/built-files.js';
import { sameStamp } from '../models/file-stamp.js';
import { notice } from '../util/notices.js';
import { loadClipCheckpoint, type ClipLayout, type LoadClipCheckpointOptions } from './weights.js';
import { CLIP_CHECKPOINT_FILES, CLIP_WEIGHTS_FILE_NAMES, findClipWeightsFile } from './checkpoint-files.js';
import { loadHfClipConfig, loadOpenClipConfig, type ClipConfig } from './config.js';
import { clipVisionGraphBuilder } from '../../models/graph/clip-vision.js';
import { CLIP_TEXT_PREFIX_GRAPH_VERSION, clipTextGraphBuilder, clipTextPrefixGraphBuilder } from '../../models/graph/clip-text.js';
import { exportWeightHash, findClipExport } from './onnx-export.js';
import { PRECISIONS, type Precision } from '../runtime/precision.js';

/** Bump when the graph builders change what they emit, so cached graphs are rebuilt. */
export const CLIP_GRAPH_VERSION = 1;
export const VISION_ONNX = 'vision.onnx';
export const TEXT_ONNX = 'text.onnx';
export const TEXT_PREFIX_ONNX = 'text-prefix.onnx';
export const CLIP_ONNX_SIDECAR = 'clip-onnx.json';
const PREFIX_SIDECAR = 'clip-text-prefix.json';

/**
 * The built graphs of one precision: fp32 keeps the names it always had (vision.onnx, text.onnx,
 * clip-onnx.json); fp16 gets vision.fp16.onnx, text.fp16.onnx and clip-onnx.fp16.json beside them,
 * so switching precision never rebuilds the other one.
 */
export function builtGraphNames(precision: Precision): { vision: string; text: string; sidecar: string } {
  if (precision === 'fp32') return { vision: VISION_ONNX, text: TEXT_ONNX, sidecar: CLIP_ONNX_SIDECAR };
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
  /** The weights file as it was when last hashed. */
  weights: StampedHash;
  quickGelu: boolean | null;
  /** Absent in sidecars written before the layout was recorded: those graphs are rebuilt once. */
  layout?: ClipLayout;
  config: ClipConfig;
  /** The towers (and their external data) as written (see src/models/built-files.ts). */
  built: BuiltFile[];
}

async function readSidecar(file: string): Promise<Partial<Sidecar> | undefined> {
  try {
    return JSON.parse(await fs.readFile(file, 'utf8')) as Partial<Sidecar>;
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
  throw new Img2PromptError(dir, 'ONNX export found but no config.json to read the image size and normalisation from', { code: 'MODEL_MISSING' });
}

export interface EnsureClipOnnxOptions extends LoadClipCheckpointOptions {
  /** Weight bytes above which a tower is written with external data (default 1.5 GiB; tests set it low). */
  externalAbove?: number;
  /** Precision of graphs built from a checkpoint (default fp32); ignored for a ready export. */
  precision?: Precision;
  /** 'stamp' (default, when opening): trust built graphs while their stamps are unchanged; 'hash' (models verify): always re-hash them. */
  check?: CheckDepth;
  /** Told when damaged graphs are rebuilt; default: a library notice (src/util/notices.ts). */
  onRebuild?(message: string): void;
}

/**
 * The vision and text ONNX graphs of the CLIP model in `dir`: a ready export when the folder has one,
 * else graphs built from its safetensors or torch.save checkpoint once and cached beside the weights. The sidecar
 * records what they were built from (weights hash and stamp, builder version, QuickGELU) and each
 * written file's sha256 and stamp. Other weights or builders rebuild the graphs quietly; a graph
 * changed after its build is rebuilt with a notice. Weights (or export towers) listed in the model's
 * install record must still have the recorded sha256 whenever their stamp moved: they were downloaded
 * or imported, so a mismatch is refused, not rebuilt from.
 */
export async function ensureClipOnnx(dir: string, options: EnsureClipOnnxOptions = {}): Promise<ClipOnnxFiles> {
  const weightsFile = await findClipWeightsFile(dir);
  const exported = weightsFile ? undefined : await findClipExport(dir);
  const record = await readInstallRecord(dir).catch(() => undefined);
  if (exported) {
    const { config, layout } = await exportConfig(dir);
    const weightHash = await exportWeightHash(dir, exported, (file, sha256) => assertAsInstalled(dir, record, file, sha256));
    return { kind: 'export', vision: exported.vision.file, text: exported.text.file, config, layout, precision: undefined, weightHash };
  }
  if (!weightsFile) {
    throw new Img2PromptError(dir, `no CLIP model here: expected ${CLIP_WEIGHTS_FILE_NAMES.join(', ')} (or one .safetensors, .pt or .pth file) or vision_model.onnx + text_model.onnx`, { code: 'MODEL_MISSING' });
  }
  const precision = options.precision ?? 'fp32';
  const names = builtGraphNames(precision);
  const vision = path.join(dir, names.vision);
  const text = path.join(dir, names.text);
  const sidecarFile = path.join(dir, names.sidecar);
  const quickGelu = options.quickGelu ?? null;
  const side = await readSidecar(sidecarFile);
  const known = side?.weightsFile === path.basename(weightsFile) ? side.weights : undefined;
  const weights = await stampedHash(weightsFile, known);
  if (weights.sha256 !== known?.sha256) assertAsInstalled(dir, record, weightsFile, weights.sha256);
  const sameInputs =
    side !== undefined &&
    side.graphVersion === CLIP_GRAPH_VERSION &&
    side.weightsFile === path.basename(weightsFile) &&
    side.weights?.sha256 === weights.sha256 &&
    side.quickGelu === quickGelu &&
    // Caches written before the layout was recorded are rebuilt once.
    (side.layout === 'open_clip' || side.layout === 'hf') &&
    side.config !== undefined;
  if (sameInputs) {
    const check = await checkBuiltFiles(dir, side.built, options.check ?? 'stamp');
    if (!check.problem) {
      if (check.restamped || !sameStamp(side.weights, weights)) {
        await writeFileAtomic(sidecarFile, JSON.stringify({ ...side, weights, built: check.records }, null, 2) + '\n');
      }
      return { kind: 'built', vision, text, config: side.config!, layout: side.layout!, precision, weightHash: weights.sha256 };
    }
    if (check.problem.damaged) (options.onRebuild ?? notice)(rebuildNotice(check.problem, path.basename(weightsFile)));
  }

  const ckpt = await loadClipCheckpoint(dir, options);
  const written: string[] = [];
  try {
    // Towers over ~1.5 GiB (ViT-H-14's image tower) go out with ONNX external data beside them.
    for (const [file, builder] of [
      [vision, clipVisionGraphBuilder(ckpt.config, ckpt.weights, precision)],
      [text, clipTextGraphBuilder(ckpt.config, ckpt.weights, precision)],
    ] as const) {
      const { external } = await builder.writeModel(file, { externalAbove: options.externalAbove });
      written.push(path.basename(file));
      if (external) written.push(`${path.basename(file)}.data`);
    }
  } catch (err) {
    if (err instanceof Img2PromptError) throw err;
    throw new Img2PromptError(dir, `cannot build the CLIP ONNX graphs: ${errorMessage(err)}`, { code: 'OUTPUT_FAILED', cause: err });
  }
  const sidecar: Sidecar = {
    graphVersion: CLIP_GRAPH_VERSION,
    weightsFile: path.basename(weightsFile),
    weights,
    quickGelu,
    layout: ckpt.layout,
    config: ckpt.config,
    built: await recordBuiltFiles(dir, written),
  };
  await writeFileAtomic(sidecarFile, JSON.stringify(sidecar, null, 2) + '\n');
  return { kind: 'built', vision, text, config: ckpt.config, layout: ckpt.layout, precision, weightHash: weights.sha256 };
}

/**
 * A file the install record lists (downloaded or imported, so nothing here can rebuild it) must still
 * have the sha256 it was installed with: otherwise it is refused, naming it and the way to reinstall.
 */
function assertAsInstalled(dir: string, record: InstallRecord | undefined, file: string, sha256: string): void {
  const rel = path.relative(dir, file).split(path.sep).join('/');
  const listed = record?.files.find((f) => f.path === rel);
  if (!record || !listed || listed.sha256 === sha256) return;
  throw new Img2PromptError(file, `sha256 ${sha256}, not the ${listed.sha256} it was installed with (changed or damaged since); ${reinstallHint(record)}`, { code: 'FILE_INVALID' });
}

/**
 * For `models verify`: re-hashes the graphs built in `dir` for each precision (nothing when none were
 * built), and the prefix-cached text graph when one was built, rebuilding damaged ones with the options
 * they were built with. Returns the built files, relative to `dir`.
 */
export async function verifyClipOnnx(dir: string, onRebuild: (message: string) => void): Promise<string[]> {
  const built: string[] = [];
  let files: ClipOnnxFiles | undefined;
  for (const precision of PRECISIONS) {
    const sidecar = path.join(dir, builtGraphNames(precision).sidecar);
    const side = await readSidecar(sidecar);
    if (!side) continue;
    files = await ensureClipOnnx(dir, { check: 'hash', onRebuild, precision, ...(typeof side.quickGelu === 'boolean' ? { quickGelu: side.quickGelu } : {}) });
    built.push(...((await readSidecar(sidecar))?.built ?? []).map((f) => f.path));
  }
  const prefix = await readPrefixSidecar(path.join(dir, PREFIX_SIDECAR));
  if (!prefix || !files) return built;
  await ensureClipTextPrefixOnnx(dir, files, { check: 'hash', onRebuild, ...(typeof prefix.quickGelu === 'boolean' ? { quickGelu: prefix.quickGelu } : {}) });
  return [...built, ...((await readPrefixSidecar(path.join(dir, PREFIX_SIDECAR)))?.built ?? []).map((f) => f.path)];
}

interface PrefixSidecar {
  graphVersion: number;
  weightsSha256: string;
  quickGelu: boolean | null;
  /** text-prefix.onnx (and its external data) as written (see src/models/built-files.ts). */
  built: BuiltFile[];
}

async function readPrefixSidecar(file: string): Promise<Partial<PrefixSidecar> | undefined> {
  try {
    return JSON.parse(await fs.readFile(file, 'utf8')) as Partial<PrefixSidecar>;
  } catch {
    return undefined;
  }
}

/**
 * The prefix-cached text graph (what greedy chains run on, see ClipPrefixEncoder), built from the same
 * checkpoint as `files` on first use and kept beside text.onnx, with the same content records as the
 * towers (a changed graph is rebuilt with a notice); undefined for a ready ONNX export, whose folder
 * has no checkpoint to build it from. Only best and negative modes need it, so other jobs never pay
 * for building it.
 */
export async function ensureClipTextPrefixOnnx(dir: string, files: ClipOnnxFiles, options: EnsureClipOnnxOptions = {}): Promise<string | undefined> {
  if (files.kind !== 'built') return undefined;
  const file = path.join(dir, TEXT_PREFIX_ONNX);
  const sidecarFile = path.join(dir, PREFIX_SIDECAR);
  const quickGelu = options.quickGelu ?? null;
  const side = await readPrefixSidecar(sidecarFile);
  const sameInputs =
    side !== undefined && side.graphVersion === CLIP_TEXT_PREFIX_GRAPH_VERSION && side.weightsSha256 === files.weightHash && side.quickGelu === quickGelu;
  if (sameInputs) {
    const check = await checkBuiltFiles(dir, side.built, options.check ?? 'stamp');
    if (!check.problem) {
      if (check.restamped) await writeFileAtomic(sidecarFile, JSON.stringify({ ...side, built: check.records }, null, 2) + '\n');
      return file;
    }
    if (check.problem.damaged) (options.onRebuild ?? notice)(rebuildNotice(check.problem, path.basename((await findClipWeightsFile(dir)) ?? 'the checkpoint')));
  }
  const ckpt = await loadClipCheckpoint(dir, options);
  let external: boolean;
  try {
    ({ external } = await clipTextPrefixGraphBuilder(ckpt.config, ckpt.weights).writeModel(file, { externalAbove: options.externalAbove }));
  } catch (err) {
    if (err instanceof Img2PromptError) throw err;
    throw new Img2PromptError(dir, `cannot build the prefix-cached CLIP text graph: ${errorMessage(err)}`, { code: 'OUTPUT_FAILED', cause: err });
  }
  const built = await recordBuiltFiles(dir, external ? [TEXT_PREFIX_ONNX, `${TEXT_PREFIX_ONNX}.data`] : [TEXT_PREFIX_ONNX]);
  const record: PrefixSidecar = { graphVersion: CLIP_TEXT_PREFIX_GRAPH_VERSION, weightsSha256: files.weightHash, quickGelu, built };
  await writeFileAtomic(sidecarFile, JSON.stringify(record, null, 2) + '\n');
  return file;
}

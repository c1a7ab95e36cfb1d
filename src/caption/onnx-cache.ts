import { promises as fs, existsSync } from 'node:fs';
import path from 'node:path';
import { Img2PromptError, errorMessage } from '../util/errors.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { sha256File } from '../models/sha256.js';
import { fileStamp, sameStamp, type FileStamp } from '../models/file-stamp.js';
import type { GraphBuilder } from '../../models/graph/onnx-builder.js';
import { BLIP_GRAPH_VERSION, blipDecoderGraphBuilder, blipImageGraphBuilder } from '../../models/graph/blip-caption.js';
import { GIT_GRAPH_VERSION, gitDecoderGraphBuilder, gitImageGraphBuilder } from '../../models/graph/git-caption.js';
import { loadCaptionCheckpoint, CAPTION_WEIGHTS_FILE, type BlipWeights, type GitWeights, type CaptionCheckpoint } from './weights.js';
import { loadCaptionConfig, type CaptionConfig } from './config.js';
import type { Precision } from '../runtime/precision.js';
import { captionExportHash, findCaptionExport, type CaptionExport } from './export-files.js';
import type { CaptionDecoderIo, CaptionImageIo } from './export-io.js';

/**
 * A captioner's two ONNX graphs (image encoder, decoder step; see models/graph/blip-caption.ts and
 * git-caption.ts), built from its safetensors checkpoint on first use and cached beside the weights.
 * A sidecar records what they were built from (graph version, the weights' stamp and sha256); any
 * difference rebuilds them.
 */

export const CAPTION_IMAGE_ONNX = 'caption-image.onnx';
export const CAPTION_DECODER_ONNX = 'caption-decoder.onnx';
const SIDECAR = 'caption-onnx.json';

/**
 * The built graphs of one precision: fp32 keeps the names it always had, fp16 puts the precision
 * before the extension, so switching precision never rebuilds the other one.
 */
export function captionGraphNames(precision: Precision): { image: string; decoder: string; sidecar: string } {
  if (precision === 'fp32') return { image: CAPTION_IMAGE_ONNX, decoder: CAPTION_DECODER_ONNX, sidecar: SIDECAR };
  return { image: `caption-image.${precision}.onnx`, decoder: `caption-decoder.${precision}.onnx`, sidecar: `caption-onnx.${precision}.json` };
}

export interface CaptionOnnxFiles {
  /** 'built': graphs built here from the safetensors; 'export': a ready export's graphs (export-files.ts). */
  kind: 'built' | 'export';
  /** The precision of built graphs; undefined for a ready export, which runs as it was exported. */
  precision: Precision | undefined;
  /** A ready export's interface; undefined for built graphs. */
  exportIo?: { image: CaptionImageIo; decoder: CaptionDecoderIo };
  image: string;
  decoder: string;
  config: CaptionConfig;
  /** sha256 of model.safetensors (of an export: over its graphs): identifies the weights (for caches of captions). */
  weightHash: string;
}

interface Sidecar {
  graphVersion: string;
  weights: { sha256: string; stamp: FileStamp };
  config: CaptionConfig;
}

/** Names the graphs an architecture's builders emit today. */
export function captionGraphVersion(arch: CaptionConfig['arch']): string {
  return arch === 'blip' ? `blip-${BLIP_GRAPH_VERSION}` : `git-${GIT_GRAPH_VERSION}`;
}

/** The builders of a checkpoint's architecture. */
export function captionGraphBuilders(ckpt: Pick<CaptionCheckpoint, 'config' | 'weights'>, precision: Precision = 'fp32'): { image: () => GraphBuilder; decoder: () => GraphBuilder } {
  const { config, weights } = ckpt;
  if (config.arch === 'blip') {
    const w = weights as BlipWeights;
    return { image: () => blipImageGraphBuilder(config, w, precision), decoder: () => blipDecoderGraphBuilder(config, w, precision) };
  }
  const w = weights as GitWeights;
  return { image: () => gitImageGraphBuilder(config, w, precision), decoder: () => gitDecoderGraphBuilder(config, w, precision) };
}

async function readSidecar(file: string): Promise<Partial<Sidecar> | undefined> {
  try {
    return JSON.parse(await fs.readFile(file, 'utf8')) as Partial<Sidecar>;
  } catch {
    return undefined; // missing or unreadable: rebuild
  }
}

/**
 * The captioner's two graphs in `dir`: built from its safetensors (see the file comment), or, in a
 * folder without one, a ready BLIP export found by its tensors (export-files.ts).
 */
export async function ensureCaptionOnnx(dir: string, precision: Precision = 'fp32'): Promise<CaptionOnnxFiles> {
  const weightsFile = path.join(dir, CAPTION_WEIGHTS_FILE);
  if (!existsSync(weightsFile)) {
    const exported = await findCaptionExport(dir);
    if (exported) return exportFiles(dir, exported);
  }
  let stamp: FileStamp;
  try {
    stamp = fileStamp(await fs.stat(weightsFile));
  } catch (err) {
    throw new Img2PromptError(weightsFile, `cannot read the captioner's weights: ${errorMessage(err)}`, { code: 'MODEL_MISSING', cause: err });
  }
  const names = captionGraphNames(precision);
  const image = path.join(dir, names.image);
  const decoder = path.join(dir, names.decoder);
  const sidecarFile = path.join(dir, names.sidecar);
  const config = await loadCaptionConfig(dir);
  const side = await readSidecar(sidecarFile);
  if (
    side?.weights &&
    JSON.stringify(side.config) === JSON.stringify(config) &&
    side.graphVersion === captionGraphVersion(config.arch) &&
    sameStamp(side.weights.stamp, stamp) &&
    existsSync(image) &&
    existsSync(decoder)
  ) {
    return { kind: 'built', precision, image, decoder, config, weightHash: side.weights.sha256 };
  }
  const ckpt = await loadCaptionCheckpoint(dir);
  const sha256 = await sha256File(weightsFile);
  const builders = captionGraphBuilders(ckpt, precision);
  try {
    // The sidecar goes first: a build cut short leaves no record claiming the graphs are current.
    await fs.rm(sidecarFile, { force: true });
    await builders.image().writeModel(image);
    await builders.decoder().writeModel(decoder);
  } catch (err) {
    if (err instanceof Img2PromptError) throw err;
    throw new Img2PromptError(dir, `cannot build the captioner's ONNX graphs: ${errorMessage(err)}`, { code: 'OUTPUT_FAILED', cause: err });
  }
  const record: Sidecar = { graphVersion: captionGraphVersion(config.arch), weights: { sha256, stamp }, config: ckpt.config };
  await writeFileAtomic(sidecarFile, JSON.stringify(record, null, 2) + '\n');
  return { kind: 'built', precision, image, decoder, config: ckpt.config, weightHash: sha256 };
}

/** A ready export as the captioner opens it: BLIP only (GIT's exports feed the image differently). */
async function exportFiles(dir: string, exp: CaptionExport): Promise<CaptionOnnxFiles> {
  const config = await loadCaptionConfig(dir);
  if (config.arch !== 'blip') {
    throw new Img2PromptError(dir, `a ready ONNX export of a ${config.arch.toUpperCase()} captioner is not supported: import its ${CAPTION_WEIGHTS_FILE} instead`, { code: 'MODEL_MISMATCH' });
  }
  const layers = exp.decoder.io.cachedLayers;
  if (layers > 0 && layers !== config.text.layers) {
    throw new Img2PromptError(exp.decoder.file, `caches ${layers} decoder layers but config.json says ${config.text.layers}`, { code: 'MODEL_MISMATCH' });
  }
  const weightHash = await captionExportHash(dir, exp);
  return { kind: 'export', precision: undefined, exportIo: { image: exp.image.io, decoder: exp.decoder.io }, image: exp.image.file, decoder: exp.decoder.file, config, weightHash };
}

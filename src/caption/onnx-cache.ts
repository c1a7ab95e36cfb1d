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

/**
 * A captioner's two ONNX graphs (image encoder, decoder step; see models/graph/blip-caption.ts and
 * git-caption.ts), built from its safetensors checkpoint on first use and cached beside the weights.
 * A sidecar records what they were built from (graph version, the weights' stamp and sha256); any
 * difference rebuilds them.
 */

export const CAPTION_IMAGE_ONNX = 'caption-image.onnx';
export const CAPTION_DECODER_ONNX = 'caption-decoder.onnx';
const SIDECAR = 'caption-onnx.json';

export interface CaptionOnnxFiles {
  image: string;
  decoder: string;
  config: CaptionConfig;
  /** sha256 of model.safetensors: identifies the weights (for caches of captions). */
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
export function captionGraphBuilders(ckpt: Pick<CaptionCheckpoint, 'config' | 'weights'>): { image: () => GraphBuilder; decoder: () => GraphBuilder } {
  const { config, weights } = ckpt;
  if (config.arch === 'blip') {
    const w = weights as BlipWeights;
    return { image: () => blipImageGraphBuilder(config, w), decoder: () => blipDecoderGraphBuilder(config, w) };
  }
  const w = weights as GitWeights;
  return { image: () => gitImageGraphBuilder(config, w), decoder: () => gitDecoderGraphBuilder(config, w) };
}

async function readSidecar(file: string): Promise<Partial<Sidecar> | undefined> {
  try {
    return JSON.parse(await fs.readFile(file, 'utf8')) as Partial<Sidecar>;
  } catch {
    return undefined; // missing or unreadable: rebuild
  }
}

export async function ensureCaptionOnnx(dir: string): Promise<CaptionOnnxFiles> {
  const weightsFile = path.join(dir, CAPTION_WEIGHTS_FILE);
  let stamp: FileStamp;
  try {
    stamp = fileStamp(await fs.stat(weightsFile));
  } catch (err) {
    throw new Img2PromptError(weightsFile, `cannot read the captioner's weights: ${errorMessage(err)}`, { code: 'MODEL_MISSING', cause: err });
  }
  const image = path.join(dir, CAPTION_IMAGE_ONNX);
  const decoder = path.join(dir, CAPTION_DECODER_ONNX);
  const sidecarFile = path.join(dir, SIDECAR);
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
    return { image, decoder, config, weightHash: side.weights.sha256 };
  }
  const ckpt = await loadCaptionCheckpoint(dir);
  const sha256 = await sha256File(weightsFile);
  const builders = captionGraphBuilders(ckpt);
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
  return { image, decoder, config: ckpt.config, weightHash: sha256 };
}

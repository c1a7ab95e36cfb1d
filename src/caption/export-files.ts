import { promises as fs, existsSync } from 'node:fs';
import path from 'node:path';
import { Img2PromptError } from '../util/errors.js';
import { readOnnxHeader, type OnnxHeader } from '../clip/onnx-header.js';
import { exportFilesHash } from '../models/export-hash.js';
import { classifyCaptionGraph, type CaptionDecoderIo, type CaptionImageIo } from './export-io.js';

/**
 * Finding a ready captioner export in a model folder (top level or under onnx/). The names BLIP's
 * published exports use are tried first, the merged decoder (one graph for the first and the cached
 * steps) before the others; failing those, the folder's .onnx files are told apart by their tensors
 * and exactly one image graph and one decoder must be among them. Quantised and fp16 variants
 * (`*_quantized.onnx`, `*_fp16.onnx`, …) are left alone unless they are the only candidates.
 */

const SUBDIRS = ['', 'onnx'];
const IMAGE_NAMES = ['vision_model.onnx', 'encoder_model.onnx'];
const DECODER_NAMES = [
  'text_decoder_model_merged.onnx', 'decoder_model_merged.onnx',
  'text_decoder_with_past_model.onnx', 'decoder_with_past_model.onnx',
  'text_decoder_model.onnx', 'decoder_model.onnx',
];
/** The graphs this engine builds from a checkpoint (onnx-cache.ts): never part of an export. */
const BUILT_NAMES = new Set(['caption-image.onnx', 'caption-decoder.onnx']);
const HASH_SIDECAR = 'caption-export-hash.json';

export interface CaptionExportGraph<Io> {
  file: string;
  io: Io;
  header: OnnxHeader;
}

export interface CaptionExport {
  image: CaptionExportGraph<CaptionImageIo>;
  decoder: CaptionExportGraph<CaptionDecoderIo>;
}

async function graph(file: string) {
  const header = await readOnnxHeader(file);
  return { file, io: classifyCaptionGraph(file, header), header };
}

async function named(dir: string, names: readonly string[]): Promise<string | undefined> {
  for (const sub of SUBDIRS) for (const n of names) if (existsSync(path.join(dir, sub, n))) return path.join(dir, sub, n);
  return undefined;
}

function asPair(image: Awaited<ReturnType<typeof graph>>, decoder: Awaited<ReturnType<typeof graph>>): CaptionExport {
  if (image.io.role !== 'image') throw new Img2PromptError(image.file, 'expected the image graph of a captioner export, found a text decoder', { code: 'MODEL_MISMATCH' });
  if (decoder.io.role !== 'decoder') throw new Img2PromptError(decoder.file, 'expected the text decoder of a captioner export, found an image graph', { code: 'MODEL_MISMATCH' });
  return { image: image as CaptionExportGraph<CaptionImageIo>, decoder: decoder as CaptionExportGraph<CaptionDecoderIo> };
}

const isVariant = (name: string) => /_(quantized|fp16|int8|uint8|q4|q4f16|bnb4)\.onnx$/.test(name);

/** The ready captioner export in `dir`, if it has one (see the file comment). */
export async function findCaptionExport(dir: string): Promise<CaptionExport | undefined> {
  const image = await named(dir, IMAGE_NAMES);
  const decoder = await named(dir, DECODER_NAMES);
  if (image && decoder) return asPair(await graph(image), await graph(decoder));
  const files: string[] = [];
  for (const sub of SUBDIRS) {
    const names = await fs.readdir(path.join(dir, sub)).catch(() => [] as string[]);
    files.push(...names.filter((n) => n.endsWith('.onnx') && !BUILT_NAMES.has(n)).sort().map((n) => path.join(dir, sub, n)));
  }
  const plain = files.filter((f) => !isVariant(path.basename(f)));
  const candidates = plain.length > 0 ? plain : files;
  if (candidates.length === 0) return undefined;
  const found = [];
  const refused: string[] = [];
  for (const f of candidates) {
    try {
      found.push(await graph(f));
    } catch (err) {
      if (!(err instanceof Img2PromptError)) throw err;
      refused.push(err.message);
    }
  }
  const images = found.filter((g) => g.io.role === 'image');
  const decoders = found.filter((g) => g.io.role === 'decoder');
  for (const [role, list] of [['image graphs', images], ['text decoders', decoders]] as const) {
    if (list.length > 1) throw new Img2PromptError(dir, `several captioner ${role} (${list.map((g) => path.relative(dir, g.file)).join(', ')}): keep one`);
  }
  if (images.length === 1 && decoders.length === 1) return asPair(images[0]!, decoders[0]!);
  const missing = images.length === 0 ? 'image graph (pixel_values → last_hidden_state)' : 'text decoder (input_ids + encoder_hidden_states → logits)';
  throw new Img2PromptError(dir, `ONNX files but no captioner ${missing} among them${refused.length ? ` (${refused.join('; ')})` : ''}`, { code: 'MODEL_MISSING' });
}

/** sha256 identifying the export's weights (both graphs and their external data), cached by file stamp. */
export function captionExportHash(dir: string, exp: CaptionExport, onRehashed?: (file: string, sha256: string) => void): Promise<string> {
  const graphs = [exp.image, exp.decoder].map((g) => ({ role: g.io.role, file: g.file, externalFiles: g.header.externalFiles }));
  return exportFilesHash(dir, graphs, HASH_SIDECAR, onRehashed);
}

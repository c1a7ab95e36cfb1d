import { promises as fs, existsSync } from 'node:fs';
import path from 'node:path';
import { Img2PromptError } from '../util/errors.js';
import { exportFilesHash } from '../models/export-hash.js';
import { readOnnxHeader, type OnnxHeader } from './onnx-header.js';
import { classifyTower, type TowerIo } from './tower-io.js';

/** The names the common Hugging Face split export uses (top level or under onnx/). */
export const HF_EXPORT_NAMES = { vision: 'vision_model.onnx', text: 'text_model.onnx' } as const;
const SUBDIRS = ['', 'onnx'];
const HASH_SIDECAR = 'clip-export-hash.json';

export interface OnnxTower {
  file: string;
  io: TowerIo;
  header: OnnxHeader;
}

export interface ClipExport {
  vision: OnnxTower;
  text: OnnxTower;
}

async function tower(file: string): Promise<OnnxTower> {
  const header = await readOnnxHeader(file);
  return { file, io: classifyTower(file, header), header };
}

function pair(a: OnnxTower, b: OnnxTower): ClipExport {
  if (a.io.tower === b.io.tower) {
    throw new Img2PromptError(path.dirname(a.file), `${path.basename(a.file)} and ${path.basename(b.file)} are both CLIP ${a.io.tower} towers`);
  }
  return a.io.tower === 'vision' ? { vision: a, text: b } : { vision: b, text: a };
}

/**
 * The ready ONNX export in `dir`, if it has one. vision_model.onnx + text_model.onnx (top level or
 * under onnx/) are taken first, whichever tower each turns out to be; else the one vision and one text
 * tower among its other .onnx files. Towers are told apart by their input/output names (tower-io.ts),
 * and a file of the expected name that is no usable tower is refused, naming what it has.
 */
export async function findClipExport(dir: string): Promise<ClipExport | undefined> {
  for (const sub of SUBDIRS) {
    const a = path.join(dir, sub, HF_EXPORT_NAMES.vision);
    const b = path.join(dir, sub, HF_EXPORT_NAMES.text);
    if (existsSync(a) && existsSync(b)) return pair(await tower(a), await tower(b));
  }
  const found: OnnxTower[] = [];
  const refused: string[] = [];
  for (const sub of SUBDIRS) {
    const names = await fs.readdir(path.join(dir, sub)).catch(() => [] as string[]);
    for (const name of names.filter((n) => n.endsWith('.onnx')).sort()) {
      try {
        found.push(await tower(path.join(dir, sub, name)));
      } catch (err) {
        if (!(err instanceof Img2PromptError)) throw err;
        refused.push(err.message);
      }
    }
  }
  const vision = found.filter((t) => t.io.tower === 'vision');
  const text = found.filter((t) => t.io.tower === 'text');
  for (const [kind, towers] of [['vision', vision], ['text', text]] as const) {
    if (towers.length > 1) {
      throw new Img2PromptError(dir, `several CLIP ${kind} towers (${towers.map((t) => path.relative(dir, t.file)).join(', ')}): keep one, or name the pair ${HF_EXPORT_NAMES.vision} + ${HF_EXPORT_NAMES.text}`);
    }
  }
  if (vision.length === 1 && text.length === 1) return { vision: vision[0]!, text: text[0]! };
  if (found.length > 0 || refused.length > 0) {
    const missing = vision.length === 0 ? 'vision' : 'text';
    throw new Img2PromptError(dir, `ONNX files but no CLIP ${missing} tower among them${refused.length ? ` (${refused.join('; ')})` : ''}`, { code: 'MODEL_MISSING' });
  }
  return undefined;
}

/** sha256 identifying the export's weights (both towers and their external data; see exportFilesHash). */
export async function exportWeightHash(dir: string, exp: ClipExport, onRehashed?: (file: string, sha256: string) => void): Promise<string> {
  const graphs = [exp.vision, exp.text].map((t) => ({ role: t.io.tower, file: t.file, externalFiles: t.header.externalFiles }));
  return exportFilesHash(dir, graphs, HASH_SIDECAR, onRehashed);
}

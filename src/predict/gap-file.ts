import { promises as fs } from 'node:fs';
import { writeFileAtomic } from '../util/atomic-write.js';
import { Img2PromptError, errorMessage } from '../util/errors.js';
import { sealJson, sealProblem } from '../util/sealed-json.js';

/**
 * The modality gap of a checkpointed predict run, kept beside the checkpoint (`<checkpoint>.gap.json`).
 * The map member needs the gap before its first image, and the gap comes from the run's own images; a
 * resumed run reads it back instead of re-encoding images it has already finished, and so gets the
 * same bits (and the same submission) as a run that was never interrupted.
 */

const FORMAT = 'img2prompt-modality-gap';
/** Version 2 seals the file with the sha256 of its content (src/util/sealed-json.ts). */
const VERSION = 2;

export interface SavedGap {
  /** The gap, or null when no sampled image could be read (the map member is then absent). */
  vector: Float32Array | null;
  /** Images and texts the two centres were estimated from. */
  images: number;
  texts: number;
}

export function gapFileFor(checkpoint: string): string {
  return `${checkpoint}.gap.json`;
}

export async function writeGapFile(file: string, fingerprint: string, gap: SavedGap): Promise<void> {
  const vector = gap.vector === null ? null : Buffer.from(gap.vector.buffer, gap.vector.byteOffset, gap.vector.byteLength).toString('base64');
  const body = { format: FORMAT, version: VERSION, fingerprint, dim: gap.vector?.length ?? 0, images: gap.images, texts: gap.texts, vector };
  await writeFileAtomic(file, `${JSON.stringify(sealJson(body))}\n`);
}

/**
 * The saved gap of the run with `fingerprint`; undefined when there is none, it is another run's or it
 * was cut off mid-write. A complete file whose content no longer matches its own hash is refused.
 */
export async function readGapFile(file: string, fingerprint: string, dim: number): Promise<SavedGap | undefined> {
  let parsed: { format?: unknown; version?: unknown; fingerprint?: unknown; dim?: unknown; images?: unknown; texts?: unknown; vector?: unknown };
  try {
    parsed = JSON.parse(await fs.readFile(file, 'utf8')) as typeof parsed;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || err instanceof SyntaxError) return undefined;
    throw new Img2PromptError(file, `cannot read the modality gap: ${errorMessage(err)}`, { code: 'FILE_UNREADABLE', cause: err });
  }
  if (parsed?.format !== FORMAT || parsed.version !== VERSION || parsed.fingerprint !== fingerprint) return undefined;
  const damaged = sealProblem(parsed);
  if (damaged) throw new Img2PromptError(file, `the modality gap of this run: ${damaged}; rerun without --resume`, { code: 'RESUME_CONFLICT' });
  const images = Number(parsed.images);
  const texts = Number(parsed.texts);
  if (parsed.vector === null) return { vector: null, images, texts };
  if (typeof parsed.vector !== 'string' || parsed.dim !== dim) return undefined;
  const bytes = Buffer.from(parsed.vector, 'base64');
  if (bytes.length !== dim * 4) return undefined;
  const vector = new Float32Array(dim);
  Buffer.from(vector.buffer).set(bytes);
  return { vector, images, texts };
}

/**
 * One image's result as a run's results hash stores it (field: the image id): the 384-d submission vector
 * bit for bit (float32, base64) and the fields collect writes beside the submission (prompt, caption,
 * nearest bank prompt) or reports (why the image could not be read). Stored per image, so a chunk that
 * runs twice (at-least-once delivery) writes the very same fields again instead of adding rows.
 */
import { EMBEDDING_DIM } from '../submission/submission-csv.js';
import { Img2PromptError } from '../util/errors.js';

export interface ImageResult {
  id: string;
  /** [384] the submission row: the ensemble, or the fallback vector of an unreadable image. */
  vector: Float32Array;
  prompt: string | null;
  caption: string | null;
  nearest: { text: string; similarity: number } | null;
  /** For an image that could not be read: the input as the user gave it (a path or URL) and why. */
  failure?: { file: string; reason: string };
}

interface Stored {
  v: string;
  p?: string;
  c?: string;
  n?: [string, number];
  f?: [string, string];
}

export function encodeImageResult(r: ImageResult): string {
  if (r.vector.length !== EMBEDDING_DIM) throw new Error(`internal: result of ${r.id} has ${r.vector.length} values, not ${EMBEDDING_DIM}`);
  const stored: Stored = { v: Buffer.from(r.vector.buffer, r.vector.byteOffset, r.vector.byteLength).toString('base64') };
  if (r.prompt !== null) stored.p = r.prompt;
  if (r.caption !== null) stored.c = r.caption;
  if (r.nearest) stored.n = [r.nearest.text, r.nearest.similarity];
  if (r.failure) stored.f = [r.failure.file, r.failure.reason];
  return JSON.stringify(stored);
}

export function decodeImageResult(id: string, text: string, where: string): ImageResult {
  let stored: Stored;
  try {
    stored = JSON.parse(text) as Stored;
  } catch {
    throw new Img2PromptError(where, `the result of image "${id}" is not JSON`, { code: 'FILE_INVALID' });
  }
  const bytes = Buffer.from(stored.v ?? '', 'base64');
  if (bytes.length !== EMBEDDING_DIM * 4) throw new Img2PromptError(where, `the result of image "${id}" holds ${bytes.length} bytes, not ${EMBEDDING_DIM} float32 values`, { code: 'FILE_INVALID' });
  const vector = new Float32Array(EMBEDDING_DIM);
  new Uint8Array(vector.buffer).set(bytes);
  return {
    id,
    vector,
    prompt: stored.p ?? null,
    caption: stored.c ?? null,
    nearest: stored.n ? { text: stored.n[0], similarity: stored.n[1] } : null,
    ...(stored.f ? { failure: { file: stored.f[0], reason: stored.f[1] } } : {}),
  };
}

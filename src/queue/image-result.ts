/**
 * One image's result as a run's results hash stores it (field: the image id): the 384-d submission vector
 * bit for bit (1536 bytes of little-endian float32) followed by a small JSON of the fields collect writes
 * beside the submission (prompt, caption, nearest bank prompt) or reports (why the image could not be
 * read): about 2 KB an image in Redis. Stored per image, so a chunk that runs twice (at-least-once
 * delivery) writes the very same fields again instead of adding rows.
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

/** The JSON part (short keys: it is stored once per image). */
interface StoredFields {
  p?: string;
  c?: string;
  n?: [string, number];
  f?: [string, string];
}

const VECTOR_BYTES = EMBEDDING_DIM * 4;

export function encodeImageResult(r: ImageResult): Buffer {
  if (r.vector.length !== EMBEDDING_DIM) throw new Error(`internal: result of ${r.id} has ${r.vector.length} values, not ${EMBEDDING_DIM}`);
  const fields: StoredFields = {};
  if (r.prompt !== null) fields.p = r.prompt;
  if (r.caption !== null) fields.c = r.caption;
  if (r.nearest) fields.n = [r.nearest.text, r.nearest.similarity];
  if (r.failure) fields.f = [r.failure.file, r.failure.reason];
  const json = Buffer.from(JSON.stringify(fields), 'utf8');
  const out = Buffer.alloc(VECTOR_BYTES + json.length);
  const view = new DataView(out.buffer, out.byteOffset, VECTOR_BYTES);
  for (let i = 0; i < EMBEDDING_DIM; i++) view.setFloat32(i * 4, r.vector[i]!, true);
  json.copy(out, VECTOR_BYTES);
  return out;
}

export function decodeImageResult(id: string, stored: Buffer, where: string): ImageResult {
  if (stored.length < VECTOR_BYTES + 2) {
    throw new Img2PromptError(where, `the result of image "${id}" holds ${stored.length} bytes, less than ${EMBEDDING_DIM} float32 values and its fields`, { code: 'FILE_INVALID' });
  }
  const vector = new Float32Array(EMBEDDING_DIM);
  const view = new DataView(stored.buffer, stored.byteOffset, VECTOR_BYTES);
  for (let i = 0; i < EMBEDDING_DIM; i++) vector[i] = view.getFloat32(i * 4, true);
  let fields: StoredFields;
  try {
    fields = JSON.parse(stored.subarray(VECTOR_BYTES).toString('utf8')) as StoredFields;
  } catch {
    throw new Img2PromptError(where, `the result of image "${id}" is damaged (its fields are not JSON)`, { code: 'FILE_INVALID' });
  }
  return {
    id,
    vector,
    prompt: fields.p ?? null,
    caption: fields.c ?? null,
    nearest: fields.n ? { text: fields.n[0], similarity: fields.n[1] } : null,
    ...(fields.f ? { failure: { file: fields.f[0], reason: fields.f[1] } } : {}),
  };
}

/**
 * What an engine takes as an image: a file path, or encoded image bytes with the id the caller gives
 * them (an upload, a queue message, a URL fetched by the caller). Engines key results, checkpoints and
 * outputs by id, so the ids of one run must be unique; that is the only rule an engine applies. What
 * characters an id may hold is the business of the file it is written to (a Kaggle submission:
 * submission/img-id.ts), checked by that writer and by the CLI.
 */
import path from 'node:path';
import { Img2PromptError } from '../util/errors.js';
import { imageIdOf, quoteFiles } from './image-id.js';

/** Encoded image bytes (PNG, JPEG, WebP, …) under a caller-chosen id. */
export interface ImageBytes {
  id: string;
  data: Uint8Array;
}

/** A file path (its id is the file name without the extension) or `{ id, data }`. */
export type ImageInput = string | ImageBytes;

/** An input with its id and the name messages use for it (the path, or the id of bytes). */
export interface ResolvedInput {
  id: string;
  /** The path for a file input; `<id>` in angle brackets for bytes, so a message never reads as a path. */
  label: string;
  /** The file path, absent for bytes. */
  file?: string;
  data?: Uint8Array;
}

/** What decodeImage reads for an input. */
export function sourceOf(input: ResolvedInput): string | Uint8Array {
  return input.data ?? input.file!;
}

/** The label of bytes with id `id`: messages name them `<id>`. */
export function bytesLabel(id: string): string {
  return `<${id}>`;
}

/**
 * Checks and resolves `inputs` (in order), refusing a value that is neither a path nor `{ id, data }`
 * (TypeError, naming `call` and the position) and ids that are not unique (Img2PromptError listing
 * every clash).
 */
export function resolveInputs(inputs: Iterable<ImageInput>, call: string): ResolvedInput[] {
  if (inputs === null || typeof inputs !== 'object' || typeof (inputs as Iterable<unknown>)[Symbol.iterator] !== 'function' || typeof inputs === 'string') {
    throw new TypeError(`${call}: Expected an array of image paths or { id, data } items but received ${typeof inputs === 'string' ? JSON.stringify(inputs) : String(inputs)} of type ${typeof inputs}`);
  }
  const out: ResolvedInput[] = [];
  let i = 0;
  for (const input of inputs) {
    if (typeof input === 'string') {
      out.push({ id: imageIdOf(input), label: input, file: input });
    } else if (input !== null && typeof input === 'object' && typeof input.id === 'string' && input.data instanceof Uint8Array) {
      if (input.id === '') throw new TypeError(`${call}: Expected a non-empty id for input ${i} but received ""`);
      out.push({ id: input.id, label: bytesLabel(input.id), data: input.data });
    } else {
      throw new TypeError(
        `${call}: Expected an image path or { id: string, data: Uint8Array } for input ${i} but received ${describe(input)}`,
      );
    }
    i++;
  }
  const shared = sharedInputIds(out);
  if (shared.length > 0) {
    throw new Img2PromptError(undefined, `image ids must be unique (an id is the file name without its extension): ${shared.join('; ')}`);
  }
  return out;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value !== 'object') return `${String(value)} of type ${typeof value}`;
  const keys = Object.keys(value);
  return `an object with keys ${keys.length ? keys.join(', ') : '(none)'}`;
}

/** One phrase per id held by more than one input, in the order first seen. */
function sharedInputIds(inputs: readonly ResolvedInput[]): string[] {
  const labelsOf = new Map<string, ResolvedInput[]>();
  for (const input of inputs) {
    const list = labelsOf.get(input.id);
    if (list) list.push(input);
    else labelsOf.set(input.id, [input]);
  }
  const out: string[] = [];
  for (const [id, list] of labelsOf) {
    if (list.length < 2) continue;
    const files = list.filter((x) => x.file !== undefined).map((x) => x.file!);
    const twice = new Set(files.map((f) => path.resolve(f))).size < files.length ? ' (a file given twice)' : '';
    const names = list.map((x) => (x.file !== undefined ? JSON.stringify(x.file) : `bytes ${x.label}`));
    out.push(`${names.length === files.length ? quoteFiles(files) : names.join(' and ')} share the id ${JSON.stringify(id)}${twice}`);
  }
  return out;
}

/**
 * A run's inputs read a slice at a time, so that an engine never needs the whole list in memory: an
 * array the caller passed (resolved and checked by resolveInputs), or a list file the CLI wrote while
 * it listed its inputs (image-list-file.ts), which holds a million inputs in a file instead of a few
 * hundred megabytes of strings. Engines read batch k as `slice(k·B, (k+1)·B)`; the ids of a list are
 * unique (whoever makes one checks that).
 */
import { resolveInputs, type ImageInput, type ResolvedInput } from './image-input.js';

/** Marks the objects that are lists (an engine also takes a plain array or iterable of inputs). */
export const IMAGE_LIST: unique symbol = Symbol.for('img2prompt.ImageList');

export interface ImageList {
  readonly [IMAGE_LIST]: true;
  /** Inputs in the list. */
  readonly length: number;
  /** Inputs [start, end) in list order (fewer at the end of the list). */
  slice(start: number, end: number): Promise<ResolvedInput[]>;
}

export function isImageList(value: unknown): value is ImageList {
  return value !== null && typeof value === 'object' && (value as Partial<ImageList>)[IMAGE_LIST] === true;
}

/** A list over inputs already resolved in memory. */
export function arrayImageList(inputs: readonly ResolvedInput[]): ImageList {
  return {
    [IMAGE_LIST]: true,
    length: inputs.length,
    slice: async (start, end) => inputs.slice(start, end),
  };
}

/** `list` with each input replaced by `map(input)` (e.g. a URL by the file it was downloaded to). */
export function mappedImageList(list: ImageList, map: (input: ResolvedInput) => ResolvedInput): ImageList {
  return {
    [IMAGE_LIST]: true,
    length: list.length,
    slice: async (start, end) => (await list.slice(start, end)).map(map),
  };
}

/** What the image loader reads for a resolved input: its path, or its bytes under its id. */
export function loaderInput(input: ResolvedInput): ImageInput {
  return input.file ?? { id: input.id, data: input.data! };
}

/** Every input of `list` in order, `chunk` at a time. */
export async function* listInputs(list: ImageList, chunk = 1024): AsyncGenerator<ResolvedInput, void, undefined> {
  for (let start = 0; start < list.length; start += chunk) yield* await list.slice(start, Math.min(list.length, start + chunk));
}

/** What an engine's run takes: a list as it is, or paths and `{ id, data }` items resolved and checked (unique ids). */
export function toImageList(inputs: Iterable<ImageInput> | ImageList, call: string): ImageList {
  return isImageList(inputs) ? inputs : arrayImageList(resolveInputs(inputs, call));
}

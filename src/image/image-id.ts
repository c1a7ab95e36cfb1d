/**
 * An image's id is its file name without the extension (Kaggle's images are `<imgId>.png`). Results,
 * checkpoints and outputs are keyed by it, so the ids of one run must be unique; that is the only rule
 * the engine needs. What characters an id may hold is a rule of the file it is written to (a Kaggle
 * submission: submission/img-id.ts), checked by that writer and by the CLI.
 */
import path from 'node:path';
import { Img2PromptError } from '../util/errors.js';

/** Image id of a file: its base name without the extension ("a/b/20057f34d.png" → "20057f34d"). */
export function imageIdOf(file: string): string {
  return path.basename(file, path.extname(file));
}

/** Files that share one id. */
export interface SharedId {
  id: string;
  files: string[];
}

/**
 * Every id held by more than one of `files` (a file given twice included), in the order first seen.
 * `idOf` names an input that is not a file path (a URL) by its own rule.
 */
export function sharedIds(files: readonly string[], idOf: (file: string) => string = imageIdOf): SharedId[] {
  const filesOf = new Map<string, string[]>();
  for (const file of files) {
    const id = idOf(file);
    const list = filesOf.get(id);
    if (list) list.push(file);
    else filesOf.set(id, [file]);
  }
  return [...filesOf].filter(([, list]) => list.length > 1).map(([id, list]) => ({ id, files: list }));
}

/** `files` quoted and joined: JSON quotes show spaces, commas and newlines in a name for what they are. */
export function quoteFiles(files: readonly string[]): string {
  return files.map((f) => JSON.stringify(f)).join(' and ');
}

/** "…/a.png and …/a.jpg share the id "a"", the wording every command uses for a clash. */
export function describeSharedId(shared: SharedId): string {
  const twice = new Set(shared.files.map((f) => path.resolve(f))).size < shared.files.length ? ' (a file given twice)' : '';
  return `${quoteFiles(shared.files)} share the id ${JSON.stringify(shared.id)}${twice}`;
}

/** The ids of `files`, refusing (one error listing every clash) ids that are not unique. */
export function uniqueImageIds(files: readonly string[]): string[] {
  const shared = sharedIds(files);
  if (shared.length > 0) {
    throw new Img2PromptError(undefined, `image ids must be unique (an id is the file name without its extension): ${shared.map(describeSharedId).join('; ')}`);
  }
  return files.map(imageIdOf);
}

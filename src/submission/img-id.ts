import { Img2PromptError } from '../util/errors.js';
import { describeSharedId, imageIdOf, quoteFiles, sharedIds } from '../image/image-id.js';

/**
 * Image ids travel through CSV files unquoted (`<imgId>_<eId>` in submissions) and come from file names,
 * so they may not contain whitespace, commas, quotes or control characters. Underscores are fine: a
 * submission key is split at its last underscore.
 */
const FORBIDDEN = /[\s,"'\u0000-\u001f\u007f]/u;

/** Why `id` is not a usable image id, or undefined when it is. */
export function imgIdProblem(id: string): string | undefined {
  const flaw = idFlaw(id);
  if (flaw === undefined) return undefined;
  return id === '' ? 'empty imgId' : `invalid imgId ${JSON.stringify(id)}: ${flaw} (no whitespace, commas or quotes allowed)`;
}

/** What makes `id` unusable, in a few words ("contains a comma"), or undefined. */
function idFlaw(id: string): string | undefined {
  if (id === '') return 'empty';
  const bad = FORBIDDEN.exec(id);
  return bad ? `contains ${describeChar(bad[0])}` : undefined;
}

function describeChar(ch: string): string {
  if (ch === ',') return 'a comma';
  if (ch === '"' || ch === "'") return 'a quote';
  if (/\s/u.test(ch)) return 'whitespace';
  return `control character U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** How many offending files an id error lists before it counts the rest. */
const LISTED = 100;

/**
 * The image ids of `files` for outputs keyed by Kaggle image ids, checked before any work starts: the
 * one id rule of every command. An id is the file name without its extension and is used as it is:
 * outputs are joined back to images (and Kaggle scores them) by that name, so a renamed id would
 * silently point at no image. Names that cannot be ids (not unique, or holding whitespace, commas,
 * quotes or control characters) are therefore refused, all of them in one error, so that one pass of
 * renaming fixes them. `idOf` gives the id of an input that is not a file path (a URL: image/url-fetch.ts).
 */
export function submissionImageIds(files: readonly string[], idOf: (file: string) => string = imageIdOf): string[] {
  const problems: string[] = [];
  for (const file of files) {
    const problem = fileIdProblem(file, idOf(file));
    if (problem) problems.push(problem);
  }
  problems.push(...sharedIds(files, idOf).map(describeSharedId));
  if (problems.length > 0) throw imageIdsError(problems, problems.length);
  return files.map((f) => idOf(f));
}

/** Why the id `id` of input `file` cannot be an image id, as the refusal lists it; undefined when it can. */
export function fileIdProblem(file: string, id: string): string | undefined {
  const flaw = idFlaw(id);
  return flaw ? `${quoteFiles([file])} (id ${flaw})` : undefined;
}

/** The one refusal of a listing's bad ids: the first LISTED of `problems`, of `count` in all. */
export function imageIdsError(problems: readonly string[], count: number): Img2PromptError {
  const more = count > LISTED ? `; ... and ${count - LISTED} more` : '';
  return new Img2PromptError(
    undefined,
    'image file names that cannot be image ids (an id is the file name without its extension; ids must be unique, ' +
      'with no whitespace, commas, quotes or control characters), rename them: ' +
      problems.slice(0, LISTED).join('; ') +
      more,
  );
}

/** How many problems an id refusal lists (the rest are counted). */
export const LISTED_ID_PROBLEMS = LISTED;

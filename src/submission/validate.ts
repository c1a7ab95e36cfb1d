import { Img2PromptError } from '../util/errors.js';
import { imageExtensions, type FormatOptions } from '../image/image-formats.js';
import { imageFilesInFolder } from '../image/list-images.js';
import { SubmissionScanner } from './submission-csv.js';
import { forEachLine } from './line-reader.js';
import { imgIdProblem, submissionImageIds } from './img-id.js';
import { readOptions } from '../util/options.js';

export interface ValidationReport {
  /** True when there are no problems (warnings do not count). */
  valid: boolean;
  /** The first `MAX_KEPT_PROBLEMS` problems, each `line N: reason` or a whole-file reason. */
  problems: string[];
  /** Total number of problems, which may exceed `problems.length`. */
  problemCount: number;
  /**
   * Things Kaggle accepts but that are probably mistakes: vectors whose L2 norm is off 1 by more than
   * `NORM_TOLERANCE`. The metric is a cosine, so scale does not change the score; only a zero (or
   * non-finite) norm makes a vector unusable, and that is a problem instead.
   */
  warnings: string[];
  /** Distinct images in the file. */
  images: number;
  /** Data rows in the file (not counting the header and blank lines). */
  rows: number;
}

export const MAX_KEPT_PROBLEMS = 1000;
export const NORM_TOLERANCE = 1e-3;

/**
 * What is wrong with image `id`'s vector of L2 norm `norm`, if anything: `unusable` for a zero or
 * overflowing norm (no cosine), otherwise a norm off 1 by more than NORM_TOLERANCE.
 */
export function vectorNormIssue(id: string, norm: number): { reason: string; unusable: boolean } | undefined {
  if (norm === 0) return { reason: `image "${id}": vector is all zeros (cosine undefined)`, unusable: true };
  if (!Number.isFinite(norm)) return { reason: `image "${id}": vector norm overflows`, unusable: true };
  if (Math.abs(norm - 1) > NORM_TOLERANCE) return { reason: `image "${id}": L2 norm ${norm.toFixed(6)} is not 1`, unusable: false };
  return undefined;
}

/**
 * Check a submission file without stopping at the first problem: the header, every row's format, that
 * each image has exactly rows eId 0..383 (contiguous, in order), that values are finite float32, that no
 * vector is all zeros, and, given `imageIds`, that the ids are exactly the expected set.
 */
export async function validateSubmission(
  file: string,
  options: { imageIds?: readonly string[] } = {},
): Promise<ValidationReport> {
  const o = readOptions(options, 'validateSubmission()');
  const imageIds = o.stringList('imageIds');
  o.done();
  const problems: string[] = [];
  let problemCount = 0;
  const add = (line: number | undefined, reason: string): void => {
    problemCount++;
    if (problems.length < MAX_KEPT_PROBLEMS) problems.push(line === undefined ? reason : `line ${line}: ${reason}`);
  };

  const scanner = new SubmissionScanner(add, false, { keepVectors: false });
  try {
    await forEachLine(file, (text, line) => scanner.feed(text, line));
  } catch (err) {
    // Unreadable or not UTF-8: nothing further can be checked.
    if (!(err instanceof Img2PromptError)) throw err;
    add(undefined, err.reason);
    return { valid: false, problems, problemCount, warnings: [], images: scanner.ids.length, rows: scanner.rows };
  }
  scanner.finish();

  const warnings: string[] = [];
  const { ids } = scanner;
  ids.forEach((id, i) => {
    // Undefined for an image reported as incomplete: its norm means nothing.
    const norm = scanner.normOf(i);
    if (norm === undefined) return;
    const issue = vectorNormIssue(id, norm);
    if (issue?.unusable) add(undefined, issue.reason);
    else if (issue) warnings.push(issue.reason);
  });

  // The common case (a run's own output, checked before it is published) needs no sets of millions of ids.
  const sameList = imageIds !== undefined && imageIds.length === ids.length && ids.every((id, i) => imageIds[i] === id);
  if (imageIds && !sameList) {
    const present = new Set(ids);
    const expected = new Set(imageIds);
    for (const id of imageIds) if (!present.has(id)) add(undefined, `missing image "${id}"`);
    for (const id of ids) if (!expected.has(id)) add(undefined, `unexpected image "${id}" (not in the expected ids)`);
  }

  return { valid: problemCount === 0, problems, problemCount, warnings, images: ids.length, rows: scanner.rows };
}

/**
 * Expected image ids from a folder of images: the images predict, interrogate and embed-images would
 * read in it (image/list-images.ts; not recursive, hidden files ignored), named by the same id rule
 * (submissionImageIds: Kaggle's images are `<imgId>.png`).
 */
export async function imageIdsInDir(dir: string, options: FormatOptions = {}): Promise<string[]> {
  const { files } = await imageFilesInFolder(dir, options);
  if (files.length === 0) {
    throw new Img2PromptError(dir, `no image files (${[...imageExtensions(options)].join(' ')}) in this directory`);
  }
  return submissionImageIds(files);
}

/** Expected image ids from a text file, one per line; surrounding whitespace and blank lines are ignored. */
export async function readIdsFile(file: string): Promise<string[]> {
  const ids: string[] = [];
  const firstLine = new Map<string, number>();
  await forEachLine(file, (text, line) => {
    const id = text.trim();
    if (id === '') return;
    const problem = imgIdProblem(id);
    if (problem) throw new Img2PromptError(file, `line ${line}: ${problem}`);
    const earlier = firstLine.get(id);
    if (earlier !== undefined) throw new Img2PromptError(file, `line ${line}: duplicate id "${id}" (first on line ${earlier})`);
    firstLine.set(id, line);
    ids.push(id);
  });
  if (ids.length === 0) throw new Img2PromptError(file, 'no ids in this file');
  return ids;
}

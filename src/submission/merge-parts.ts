/**
 * Puts the parts of a sharded run (`--shard I/N`, shard.ts) back together into the file one unsharded
 * run would have written, byte for byte: the parts are read strictly, every image must be in exactly
 * one part, and the rows are written again by the same writer (values round-trip exactly: a float32
 * written by formatValue reads back as itself).
 *
 * The parts are submissions (`imgId_eId,val`) or prompts CSVs (`imgId,prompt`, as written by
 * predict --prompts-out and interrogate), told apart by their header; all parts must be of one kind.
 *
 * Row order: predict writes images in input order, and a folder's images in file-name order. Given the
 * expected ids (a folder of images, read as predict lists it, or an ids file), the merge writes them in
 * that order: the bytes of `predict DIR` itself. Without them, in id order (by UTF-16 code unit), which
 * is a folder's order whenever its files all have the same extension (Kaggle's `<imgId>.png`).
 */
import { promises as fs } from 'node:fs';
import { Img2PromptError } from '../util/errors.js';
import { readSubmission, SUBMISSION_HEADER, EMBEDDING_DIM, writeSubmission } from './submission-csv.js';
import { readPromptsCsv, writePromptsCsv, type PromptRow } from './prompts-csv.js';

export type PartKind = 'submission' | 'prompts';

export interface MergeOptions {
  /**
   * The ids of the whole run, in its order: each must be in a part (a submission has a row for every
   * image, an unreadable one included; a prompts CSV has none for an unreadable image, so there a
   * missing id is not an error) and no part may hold another id.
   */
  expectedIds?: readonly string[];
}

export interface MergeResult {
  kind: PartKind;
  /** Images written. */
  images: number;
}

/** How many ids an error lists before it counts the rest. */
const LISTED = 20;

function listIds(ids: readonly string[]): string {
  const shown = ids.slice(0, LISTED).map((id) => JSON.stringify(id)).join(', ');
  return ids.length > LISTED ? `${shown} and ${ids.length - LISTED} more` : shown;
}

/** The kind of part `file` is, by its first line. */
export async function partKind(file: string): Promise<PartKind> {
  let head: string;
  try {
    const fh = await fs.open(file, 'r');
    try {
      const buf = Buffer.alloc(256);
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      head = buf.subarray(0, bytesRead).toString('utf8').replace(/^\uFEFF/, '');
    } finally {
      await fh.close();
    }
  } catch (err) {
    throw new Img2PromptError(file, `cannot read: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : String((err as Error).message)}`, { code: 'FILE_UNREADABLE', cause: err });
  }
  const first = head.split(/\r?\n/, 1)[0].trim();
  if (first === SUBMISSION_HEADER) return 'submission';
  if (first.split(',').includes('imgId')) return 'prompts';
  throw new Img2PromptError(file, `line 1: ${JSON.stringify(first.slice(0, 80))} is neither a submission header (${SUBMISSION_HEADER}) nor a prompts CSV header (imgId,prompt)`, { code: 'FILE_INVALID' });
}

/**
 * Merges `parts` into `output` (written atomically), refusing, before anything is written, parts of
 * mixed kinds, an id in more than one part, and (given `expectedIds`) a missing or unexpected id.
 */
export async function mergeParts(parts: readonly string[], output: string, options: MergeOptions = {}): Promise<MergeResult> {
  if (parts.length === 0) throw new Img2PromptError(undefined, 'merge needs at least one part');
  const kinds = await Promise.all(parts.map(partKind));
  if (new Set(kinds).size > 1) {
    throw new Img2PromptError(undefined, `the parts mix kinds: ${parts.map((p, i) => `${p} (${kinds[i]})`).join(', ')}; merge submissions and prompts CSVs separately`);
  }
  const kind = kinds[0];
  // id → [part, row in part]
  const where = new Map<string, [number, number]>();
  const doubled: string[] = [];
  const read: ({ ids: string[]; vectors: Float32Array } | PromptRow[])[] = [];
  for (let p = 0; p < parts.length; p++) {
    const part = kind === 'submission' ? await readSubmission(parts[p]) : await readPromptsCsv(parts[p]);
    read.push(part);
    const ids = Array.isArray(part) ? part.map((r) => r.imgId) : part.ids;
    ids.forEach((id, row) => {
      const earlier = where.get(id);
      if (earlier) doubled.push(`"${id}" in ${parts[earlier[0]]} and ${parts[p]}`);
      else where.set(id, [p, row]);
    });
  }
  if (doubled.length > 0) {
    throw new Img2PromptError(undefined, `${doubled.length} image id${doubled.length === 1 ? ' is' : 's are'} in more than one part (were the parts made with the same --shard?): ${doubled.slice(0, LISTED).join('; ')}${doubled.length > LISTED ? `; ... and ${doubled.length - LISTED} more` : ''}`);
  }
  const order = orderOf([...where.keys()], kind, options.expectedIds);
  if (kind === 'submission') {
    const vectors = new Float32Array(order.length * EMBEDDING_DIM);
    order.forEach((id, i) => {
      const [p, row] = where.get(id)!;
      const part = read[p] as { vectors: Float32Array };
      vectors.set(part.vectors.subarray(row * EMBEDDING_DIM, (row + 1) * EMBEDDING_DIM), i * EMBEDDING_DIM);
    });
    await writeSubmission(output, order, vectors);
  } else {
    await writePromptsCsv(output, order.map((id) => { const [p, row] = where.get(id)!; return (read[p] as PromptRow[])[row]; }));
  }
  return { kind, images: order.length };
}

/** The ids to write, in order, after checking them against `expected`. */
function orderOf(found: string[], kind: PartKind, expected: readonly string[] | undefined): string[] {
  if (expected === undefined) return found.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const expectedSet = new Set(expected);
  const unexpected = found.filter((id) => !expectedSet.has(id));
  if (unexpected.length > 0) throw new Img2PromptError(undefined, `${unexpected.length} image id${unexpected.length === 1 ? '' : 's'} in the parts ${unexpected.length === 1 ? 'is' : 'are'} not among the expected ids: ${listIds(unexpected)}`);
  const foundSet = new Set(found);
  const missing = expected.filter((id) => !foundSet.has(id));
  if (missing.length > 0 && kind === 'submission') {
    throw new Img2PromptError(undefined, `${missing.length} expected image id${missing.length === 1 ? ' is' : 's are'} in no part (a shard not run, or a part left out?): ${listIds(missing)}`);
  }
  return expected.filter((id) => foundSet.has(id));
}

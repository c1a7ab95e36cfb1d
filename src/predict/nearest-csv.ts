import { writeFileAtomic } from '../util/atomic-write.js';
import { Img2PromptError } from '../util/errors.js';
import { checkPromptRows, csvField } from '../submission/prompts-csv.js';

/**
 * The nearest bank prompt per image (`predict --nearest-out`): `imgId,prompt,similarity`. A file of its
 * own rather than a third column of `--prompts-out`, which stays Kaggle's two-column prompts.csv; the
 * prompts reader ignores extra columns, so `embed` and `score` read this file too (to score the
 * nearest-prompt guess on its own).
 */

export interface NearestRow {
  imgId: string;
  prompt: string;
  /** Cosine similarity of the image and the prompt in CLIP space. */
  similarity: number;
}

export const NEAREST_HEADER = 'imgId,prompt,similarity';

export async function writeNearestCsv(file: string, rows: readonly NearestRow[]): Promise<void> {
  checkPromptRows(file, rows, 'a nearest-prompts CSV');
  const lines = [NEAREST_HEADER];
  rows.forEach((row, i) => lines.push(nearestLine(file, row, i + 1)));
  await writeFileAtomic(file, lines.join('\n') + '\n');
}

/** The `n`th row of a nearest-prompts CSV, without its newline; refuses a similarity that is not finite. */
export function nearestLine(file: string, { imgId, prompt, similarity }: NearestRow, n: number): string {
  if (!Number.isFinite(similarity)) throw new Img2PromptError(file, `cannot write row ${n}: similarity ${similarity} for imgId "${imgId}" is not finite`);
  return `${imgId},${csvField(prompt)},${similarity.toFixed(6)}`;
}

import { Img2PromptError } from '../util/errors.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { csvField } from '../submission/prompts-csv.js';

export const CAPTIONS_HEADER = ['imgId', 'caption'] as const;

/**
 * Write `imgId,caption` rows (LF line endings, fields quoted only where CSV needs it) atomically. A
 * caption may be empty (a model may end at once); an id may not repeat.
 */
export async function writeCaptionsCsv(file: string, rows: readonly { imgId: string; caption: string }[]): Promise<void> {
  const seen = new Set<string>();
  const lines = [CAPTIONS_HEADER.join(',')];
  rows.forEach(({ imgId, caption }, i) => {
    if (seen.has(imgId)) throw new Img2PromptError(file, `cannot write row ${i + 1}: duplicate imgId "${imgId}"`);
    seen.add(imgId);
    lines.push(captionsLine({ imgId, caption }));
  });
  await writeFileAtomic(file, lines.join('\n') + '\n');
}

/** One row of a captions CSV, without its newline. */
export function captionsLine({ imgId, caption }: { imgId: string; caption: string }): string {
  return `${csvField(imgId)},${csvField(caption)}`;
}

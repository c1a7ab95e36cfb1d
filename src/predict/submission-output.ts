import { writeAtomically } from '../util/atomic-write.js';
import { Img2PromptError } from '../util/errors.js';
import { writeSubmission } from '../submission/submission-csv.js';
import { validateSubmission } from '../submission/validate.js';

/**
 * Writes a submission through a temp file that is validated (layout, finite unit vectors, exactly the
 * expected ids) before it is renamed into place: a run never leaves a submission Kaggle would reject.
 */
export async function writeValidatedSubmission(file: string, ids: readonly string[], vectors: Float32Array): Promise<void> {
  await writeAtomically(file, async (tmp) => {
    await writeSubmission(tmp, ids, vectors);
    const report = await validateSubmission(tmp, { imageIds: ids });
    if (!report.valid) {
      const more = report.problemCount > 3 ? ` (and ${report.problemCount - 3} more)` : '';
      throw new Img2PromptError(file, `refusing to write an invalid submission: ${report.problems.slice(0, 3).join('; ')}${more}`);
    }
  });
}

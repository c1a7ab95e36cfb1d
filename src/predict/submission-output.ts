import { writeAtomically } from '../util/atomic-write.js';
import { Img2PromptError } from '../util/errors.js';
import { checkSubmissionInput, writeSubmissionRows } from '../submission/submission-csv.js';
import { validateSubmission } from '../submission/validate.js';

/**
 * Writes a submission through a temp file that is validated (layout, finite non-zero vectors of unit
 * length, exactly the `expectedIds`: by default `ids`) before it is renamed into place: a run never
 * leaves a submission Kaggle would reject, nor one that lost or misplaced an image. Predict's vectors
 * are all unit length, so a norm that is off (only a warning for `validate`) is refused here too.
 */
export async function writeValidatedSubmission(file: string, ids: readonly string[], vectors: Float32Array, expectedIds: readonly string[] = ids): Promise<void> {
  checkSubmissionInput(file, ids, vectors);
  await writeAtomically(file, async (out) => {
    await writeSubmissionRows(out, ids, vectors);
    const report = await validateSubmission(out.tempPath, { imageIds: expectedIds });
    const problems = [...report.problems, ...report.warnings];
    if (problems.length > 0) {
      const count = report.problemCount + report.warnings.length;
      const more = count > 3 ? ` (and ${count - 3} more)` : '';
      throw new Img2PromptError(file, `refusing to write an invalid submission: ${problems.slice(0, 3).join('; ')}${more}`, { code: 'OUTPUT_FAILED' });
    }
  });
}

import { writeAtomically } from '../util/atomic-write.js';
import { Img2PromptError } from '../util/errors.js';
import { CsvStream, type IdOrder } from '../submission/csv-stream.js';
import { imgIdProblem } from '../submission/img-id.js';
import { checkSubmissionInput, EMBEDDING_DIM, SUBMISSION_HEADER, submissionLines, writeSubmissionRows } from '../submission/submission-csv.js';
import { validateSubmission } from '../submission/validate.js';
import { checkSubmissionInOrder } from '../submission/ordered-check.js';

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
    await refuseInvalid(file, out.tempPath, expectedIds);
  });
}

async function refuseInvalid(file: string, written: string, expectedIds: readonly string[] | undefined): Promise<void> {
  const report = await validateSubmission(written, expectedIds ? { imageIds: expectedIds } : {});
  const problems = [...report.problems, ...report.warnings];
  if (problems.length > 0) throw invalid(file, problems, report.problemCount + report.warnings.length);
}

function invalid(file: string, problems: readonly string[], count: number): Img2PromptError {
  const more = count > 3 ? ` (and ${count - 3} more)` : '';
  return new Img2PromptError(file, `refusing to write an invalid submission: ${problems.slice(0, 3).join('; ')}${more}`, { code: 'OUTPUT_FAILED' });
}

/**
 * The same validated submission, written image by image as a run hands its results out (in the order
 * of `expectedIds`), so that memory does not grow with the number of images: the bytes are those of
 * `writeValidatedSubmission`, and the temp is validated in the same way before it is published.
 */
export class ValidatedSubmissionStream {
  /** The ids still to come, in order. */
  private readonly expected: Iterator<string>;

  private constructor(
    private readonly rows: CsvStream,
    private readonly expectedIds: IdOrder,
  ) {
    this.expected = expectedIds[Symbol.iterator]();
  }

  /** `expectedIds`: an array, or a list file's ids (read once, in step with the rows). */
  static async create(file: string, expectedIds: IdOrder): Promise<ValidatedSubmissionStream> {
    if (expectedIds.length === 0) throw new Img2PromptError(file, 'cannot write submission: no images');
    // The rows are checked against the order here, image by image; the CSV stream need not check them again.
    return new ValidatedSubmissionStream(await CsvStream.create(file, SUBMISSION_HEADER, undefined), expectedIds);
  }

  get file(): string {
    return this.rows.file;
  }

  /** The rows of the next image; `vector` holds its 384 values. */
  async add(id: string, vector: Float32Array): Promise<void> {
    const refuse = (reason: string): never => {
      throw new Img2PromptError(this.file, `cannot write submission: ${reason}`);
    };
    const problem = imgIdProblem(id);
    if (problem) refuse(problem);
    if (vector.length !== EMBEDDING_DIM) refuse(`expected ${EMBEDDING_DIM} values for image "${id}", got ${vector.length}`);
    for (let e = 0; e < EMBEDDING_DIM; e++) if (!Number.isFinite(vector[e])) refuse(`value ${vector[e]} for ${id}_${e} is not finite`);
    const expected = this.expected.next().value;
    if (id !== expected) refuse(`image "${id}" came where "${expected}" belongs (images must come in input order)`);
    await this.rows.addText(id, submissionLines(id, vector));
  }

  /** Validates the whole temp file and publishes it; refuses (publishing nothing) when an image is missing. */
  async finish(): Promise<void> {
    try {
      if (this.rows.rows !== this.expectedIds.length) {
        throw new Img2PromptError(this.file, `cannot write submission: missing image "${this.expected.next().value}" (${this.rows.rows} of ${this.expectedIds.length} images came)`);
      }
      await this.rows.flush();
      // The file is read back before it is published, in constant memory: its layout is known, so each
      // row is checked against the id order as it is read (validateSubmission would keep ~100 bytes an image).
      const { problems, count } = await checkSubmissionInOrder(this.rows.tempPath, this.expectedIds);
      if (count > 0) throw invalid(this.file, problems, count);
    } catch (err) {
      await this.rows.abort();
      throw err;
    }
    await this.rows.commit();
  }

  /** Drops the temp file; nothing is published. */
  abort(): Promise<void> {
    return this.rows.abort();
  }
}

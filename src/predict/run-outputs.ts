import { captionsLine, CAPTIONS_HEADER } from '../caption/captions-csv.js';
import { CsvStream, type IdOrder } from '../submission/csv-stream.js';
import { checkPromptRow, promptsLine, PROMPTS_HEADER } from '../submission/prompts-csv.js';
import { nearestLine, NEAREST_HEADER } from './nearest-csv.js';
import { ValidatedSubmissionStream } from './submission-output.js';
import type { PredictedImage } from './types.js';

/**
 * The files a `predict` run writes (the submission and, when asked, the prompts, captions and nearest
 * prompts CSVs), streamed as the run hands its images out: whatever the number of images, memory holds
 * one buffer per file. Images resumed from the checkpoint come back from its file like fresh ones, so a
 * resumed run writes the bytes an uninterrupted one would. Nothing is published until `finish`, and
 * then each file whole: an interrupted or failed run leaves no part of any.
 */

export interface PredictOutputFiles {
  submission: string;
  prompts?: string;
  captions?: string;
  nearest?: string;
}

export class PredictRunOutputs {
  private constructor(
    private readonly submission: ValidatedSubmissionStream,
    private readonly prompts: CsvStream | undefined,
    private readonly captions: CsvStream | undefined,
    private readonly nearest: CsvStream | undefined,
  ) {}

  /** Starts every file (as temps); `expectedIds`: the images written, in the order the run hands them out. */
  static async create(files: PredictOutputFiles, expectedIds: IdOrder): Promise<PredictRunOutputs> {
    const opened: { abort(): Promise<void> }[] = [];
    const open = async <T extends { abort(): Promise<void> }>(make: () => Promise<T>): Promise<T> => {
      const stream = await make();
      opened.push(stream);
      return stream;
    };
    const csv = (file: string | undefined, header: string) => (file === undefined ? undefined : open(() => CsvStream.create(file, header, expectedIds)));
    try {
      return new PredictRunOutputs(
        await open(() => ValidatedSubmissionStream.create(files.submission, expectedIds)),
        await csv(files.prompts, PROMPTS_HEADER.join(',')),
        await csv(files.captions, CAPTIONS_HEADER.join(',')),
        await csv(files.nearest, NEAREST_HEADER),
      );
    } catch (err) {
      for (const stream of opened) await stream.abort();
      throw err;
    }
  }

  /** The rows of one image (the next one of `expectedIds`). */
  async add(r: PredictedImage): Promise<void> {
    await this.submission.add(r.id, r.vector);
    if (this.prompts && r.failure === undefined && r.prompt) {
      const row = { imgId: r.id, prompt: r.prompt };
      checkPromptRow(this.prompts.file, row, this.prompts.rows + 1);
      await this.prompts.add(r.id, promptsLine(row));
    }
    if (this.captions && r.caption !== null) await this.captions.add(r.id, captionsLine({ imgId: r.id, caption: r.caption }));
    if (this.nearest && r.nearestPrompt) {
      const row = { imgId: r.id, prompt: r.nearestPrompt.text, similarity: r.nearestPrompt.similarity };
      checkPromptRow(this.nearest.file, row, this.nearest.rows + 1);
      await this.nearest.add(r.id, nearestLine(this.nearest.file, row, this.nearest.rows + 1));
    }
  }

  /**
   * Publishes the submission (validated), then each CSV that has a row; `onEmpty` is told of a CSV with
   * none (a CSV needs at least one row), which is not written.
   */
  async finish(onEmpty: (file: string) => void): Promise<void> {
    try {
      await this.submission.finish();
      for (const csv of [this.prompts, this.captions, this.nearest]) {
        if (!csv) continue;
        if (csv.rows > 0) {
          await csv.commit();
        } else {
          await csv.abort();
          onEmpty(csv.file);
        }
      }
    } catch (err) {
      await this.abort();
      throw err;
    }
  }

  /** Drops every temp; nothing is published. Safe after `finish`. */
  async abort(): Promise<void> {
    for (const stream of [this.submission, this.prompts, this.captions, this.nearest]) await stream?.abort();
  }
}

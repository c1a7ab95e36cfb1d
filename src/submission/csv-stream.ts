import { BufferedTextOutput } from '../util/buffered-text-output.js';
import { Img2PromptError } from '../util/errors.js';

/**
 * A per-image output (CSV, id list) written row by row as a run hands out its images, so that a run of
 * millions of images holds one buffer of rows, not every row (BufferedTextOutput): the target
 * appears only at `commit()`, whole, and a run that fails or is interrupted leaves the old file (or none).
 *
 * Each row's image must come later in `order` (the run's images in input order) than the row before:
 * that forbids a repeated id as a set of seen ids would, without keeping one. The order is read
 * forward once, so it can come from a list file (ImageListFile.idOrder) instead of memory.
 */

/** The ids of a run's images in input order: an array, or a sequence read once with its length. */
export interface IdOrder {
  readonly length: number;
  [Symbol.iterator](): Iterator<string>;
}

export class CsvStream {
  /** Rows added so far (the header not counted). */
  rows = 0;
  /** The ids after the last row's image (undefined: the caller checks its rows' ids itself). */
  private readonly order: Iterator<string> | undefined;

  private constructor(
    private readonly out: BufferedTextOutput,
    order: IdOrder | undefined,
  ) {
    this.order = order?.[Symbol.iterator]();
  }

  /** Starts `file` (a temp until commit) with `header` as its first line, when given. */
  static async create(file: string, header: string | undefined, order: IdOrder | undefined): Promise<CsvStream> {
    const out = await BufferedTextOutput.create(file);
    if (header !== undefined) await out.add(`${header}\n`);
    return new CsvStream(out, order);
  }

  get file(): string {
    return this.out.target;
  }

  /** The temp the rows go to (readable, e.g. to validate it, before commit). */
  get tempPath(): string {
    return this.out.tempPath;
  }

  /** Appends `line` (no newline) as the row of image `imgId`. */
  async add(imgId: string, line: string): Promise<void> {
    this.checkOrder(imgId);
    this.rows++;
    await this.out.add(`${line}\n`);
  }

  /** Appends text that is not a row of its own (e.g. the 384 lines of one image of a submission). */
  async addText(imgId: string, text: string): Promise<void> {
    this.checkOrder(imgId);
    this.rows++;
    await this.out.add(text);
  }

  /** Writes what is buffered, so the temp holds every row added. */
  flush(): Promise<void> {
    return this.out.flush();
  }

  /** Publishes the file onto its target. */
  commit(): Promise<void> {
    return this.out.commit();
  }

  /** Drops the temp; the target is untouched. Does nothing after commit. */
  abort(): Promise<void> {
    return this.out.abort();
  }

  private checkOrder(imgId: string): void {
    if (!this.order) return;
    for (let next = this.order.next(); !next.done; next = this.order.next()) if (next.value === imgId) return;
    throw new Img2PromptError(this.file, `cannot write row ${this.rows + 1}: imgId "${imgId}" is repeated, or not among the run's images in their order`, { code: 'OUTPUT_FAILED' });
  }
}

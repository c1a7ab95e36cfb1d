import { AtomicFile } from '../util/atomic-write.js';
import { Img2PromptError } from '../util/errors.js';

/**
 * A per-image output (CSV, id list) written row by row as a run hands out its images, so that a run of
 * millions of images holds one buffer of rows, not every row. The rows go to an AtomicFile: the target
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

/**
 * Characters buffered before a write: enough for few system calls, and few enough that the buffered
 * rows die young (V8's scavenger frees them) instead of piling up in the old generation until a full GC.
 */
const BUFFER_CHARS = 1 << 16;

export class CsvStream {
  /** Rows added so far (the header not counted). */
  rows = 0;
  private buffer: string[] = [];
  private buffered = 0;
  /** The ids after the last row's image (undefined: the caller checks its rows' ids itself). */
  private readonly order: Iterator<string> | undefined;

  private constructor(
    private readonly out: AtomicFile,
    order: IdOrder | undefined,
  ) {
    this.order = order?.[Symbol.iterator]();
  }

  /** Starts `file` (a temp until commit) with `header` as its first line, when given. */
  static async create(file: string, header: string | undefined, order: IdOrder | undefined): Promise<CsvStream> {
    const stream = new CsvStream(await AtomicFile.create(file), order);
    if (header !== undefined) stream.push(header);
    return stream;
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
    this.push(line);
    if (this.buffered >= BUFFER_CHARS) await this.flush();
  }

  /** Appends text that is not a row of its own (e.g. the 384 lines of one image of a submission). */
  async addText(imgId: string, text: string): Promise<void> {
    this.checkOrder(imgId);
    this.rows++;
    this.buffer.push(text);
    this.buffered += text.length;
    if (this.buffered >= BUFFER_CHARS) await this.flush();
  }

  /** Writes what is buffered, so the temp holds every row added. */
  async flush(): Promise<void> {
    if (this.buffer.length === 0) return;
    const text = this.buffer.join('');
    this.buffer = [];
    this.buffered = 0;
    await this.out.write(text);
  }

  /** Publishes the file onto its target. */
  async commit(): Promise<void> {
    try {
      await this.flush();
    } catch (err) {
      await this.out.abort();
      throw err;
    }
    await this.out.commit();
  }

  /** Drops the temp; the target is untouched. Does nothing after commit. */
  abort(): Promise<void> {
    return this.out.abort();
  }

  private push(line: string): void {
    this.buffer.push(line, '\n');
    this.buffered += line.length + 1;
  }

  private checkOrder(imgId: string): void {
    if (!this.order) return;
    for (let next = this.order.next(); !next.done; next = this.order.next()) if (next.value === imgId) return;
    throw new Img2PromptError(this.file, `cannot write row ${this.rows + 1}: imgId "${imgId}" is repeated, or not among the run's images in their order`, { code: 'OUTPUT_FAILED' });
  }
}

import { AtomicFile } from './atomic-write.js';
import { Img2PromptError } from './errors.js';
import { npyHeader } from './npy.js';

/**
 * A [rows, dim] float32 .npy whose row count is known only at the end (embed-images: an image that
 * cannot be read has no row), written batch by batch so that memory holds one batch, not the matrix.
 *
 * The header is written for `maxRows` (the number of inputs) and patched in place at `finish` with the
 * real count. The patch always fits: a 2-d header is padded to 128 bytes whatever the two numbers
 * (10 bytes of prefix, 53 of dict besides the digits, a newline: the digits of any two safe integers fit),
 * so the file is byte for byte what `writeNpy` writes for the same rows. Like every output it appears
 * only when whole (AtomicFile).
 */

export class NpyStreamWriter {
  private written = 0;
  private finished = false;

  private constructor(
    readonly file: string,
    readonly dim: number,
    readonly maxRows: number,
    private readonly out: AtomicFile,
    /** Byte length of the header written for maxRows: where the rows start. */
    private readonly dataOffset: number,
  ) {}

  static async create(file: string, dim: number, maxRows: number): Promise<NpyStreamWriter> {
    if (!Number.isSafeInteger(dim) || dim < 0 || !Number.isSafeInteger(maxRows) || maxRows < 0) {
      throw new Img2PromptError(file, `an .npy of at most ${maxRows} rows of ${dim} values cannot be written`);
    }
    const header = npyHeader([maxRows, dim]);
    const out = await AtomicFile.create(file);
    try {
      await out.write(header);
    } catch (err) {
      await out.abort();
      throw err;
    }
    return new NpyStreamWriter(file, dim, maxRows, out, header.length);
  }

  /** Rows written so far. */
  get rows(): number {
    return this.written;
  }

  /** Appends whole rows (a multiple of `dim` values). */
  async append(data: Float32Array): Promise<void> {
    if (data.length % this.dim !== 0) throw new Img2PromptError(this.file, `${data.length} values are not whole rows of ${this.dim}`);
    const n = data.length / this.dim;
    if (this.written + n > this.maxRows) throw new Img2PromptError(this.file, `too many rows: ${this.written + n} for at most ${this.maxRows}`);
    await this.out.write(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    this.written += n;
  }

  /** Writes the header of the real shape [rows, dim] and publishes the file. */
  async finish(): Promise<void> {
    if (this.finished) throw new Img2PromptError(this.file, 'cannot write: the file is already closed', { code: 'OUTPUT_FAILED' });
    this.finished = true;
    const header = npyHeader([this.written, this.dim]);
    try {
      if (header.length !== this.dataOffset) throw new Error(`internal: the .npy header of [${this.written}, ${this.dim}] is ${header.length} bytes, ${this.dataOffset} were reserved`);
      await this.out.write(header, 0);
    } catch (err) {
      await this.out.abort();
      throw err;
    }
    await this.out.commit();
  }

  /** Drops the partial file. */
  async abort(): Promise<void> {
    this.finished = true;
    await this.out.abort();
  }
}

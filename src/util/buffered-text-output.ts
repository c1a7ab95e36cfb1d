import { AtomicFile } from './atomic-write.js';

/**
 * Characters buffered before a write: enough for few system calls, and few enough that the buffered
 * pieces die young (V8's scavenger frees them) instead of piling up in the old generation until a full GC.
 */
const BUFFER_CHARS = 1 << 16;

/**
 * A text output written piece by piece through a buffer of about 64k characters into an AtomicFile:
 * the streamed writers (CSV rows, a JSON list) hold one buffer whatever the size of the run, and the
 * target appears only at `commit()`, whole; a failed or interrupted run leaves the old file (or none).
 */
export class BufferedTextOutput {
  private pieces: string[] = [];
  private buffered = 0;

  private constructor(private readonly out: AtomicFile) {}

  static async create(file: string): Promise<BufferedTextOutput> {
    return new BufferedTextOutput(await AtomicFile.create(file));
  }

  /** The file it publishes. */
  get target(): string {
    return this.out.target;
  }

  /** The temp the text goes to (readable, e.g. to validate it, before commit). */
  get tempPath(): string {
    return this.out.tempPath;
  }

  /** Buffers `text`; writes the buffer out once it is full. */
  async add(text: string): Promise<void> {
    this.pieces.push(text);
    this.buffered += text.length;
    if (this.buffered >= BUFFER_CHARS) await this.flush();
  }

  /** Writes what is buffered, so the temp holds all the text added. */
  async flush(): Promise<void> {
    if (this.pieces.length === 0) return;
    const text = this.pieces.join('');
    this.pieces = [];
    this.buffered = 0;
    await this.out.write(text);
  }

  /** Writes the rest (and `last`, the file's end) and publishes the file onto its target; on a failed write the temp is dropped. */
  async commit(last = ''): Promise<void> {
    try {
      if (last !== '') this.pieces.push(last);
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
}

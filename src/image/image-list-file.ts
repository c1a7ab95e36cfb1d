/**
 * An ImageList kept in a file instead of memory: one JSON-quoted source (a path or a URL) a line, an
 * offset every INDEX_STEP lines, and nothing else per input in memory. The CLI writes one while it
 * lists a command's inputs (a folder, a `--from` list of a million lines), so the listing, the id
 * checks, the shard split and the run each read the inputs from disk a slice at a time.
 *
 * The file is unlinked as soon as it is opened: it lives as long as the open handle, and no run, however
 * it ends (a crash, a SIGKILL), leaves one behind.
 */
import { promises as fs, readSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ResolvedInput } from './image-input.js';
import { IMAGE_LIST, type ImageList } from './image-list.js';

/** Lines between two remembered offsets: 8 bytes of index per 64 inputs. */
const INDEX_STEP = 64;
const WRITE_BYTES = 1 << 20;
const READ_BYTES = 1 << 16;

export class ImageListFile implements ImageList {
  readonly [IMAGE_LIST] = true as const;
  length = 0;
  /** Byte offset of line i·INDEX_STEP. */
  private index = new Float64Array(64);
  private bytes = 0;
  private pending: string[] = [];
  private pendingBytes = 0;
  private sealed = false;

  private constructor(
    private readonly fh: fs.FileHandle,
    /** The id of a source (a file name without its extension, a URL's last segment). */
    readonly idOf: (source: string) => string,
  ) {}

  /** An empty list in a fresh unlinked temp file; add sources, then `seal()` before reading. */
  static async create(idOf: (source: string) => string): Promise<ImageListFile> {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'img2prompt-list-'));
    const file = path.join(dir, 'inputs.jsonl');
    const fh = await fs.open(file, 'w+');
    await fs.rm(dir, { recursive: true, force: true });
    return new ImageListFile(fh, idOf);
  }

  /** A sealed list of `sources` (tests, and lists made from other lists). */
  static async of(sources: Iterable<string> | AsyncIterable<string>, idOf: (source: string) => string): Promise<ImageListFile> {
    const list = await ImageListFile.create(idOf);
    try {
      for await (const s of sources) await list.add(s);
      await list.seal();
    } catch (err) {
      await list.close();
      throw err;
    }
    return list;
  }

  async add(source: string): Promise<void> {
    if (this.sealed) throw new Error('internal: ImageListFile.add after seal');
    if (this.length % INDEX_STEP === 0) {
      const slot = this.length / INDEX_STEP;
      if (slot >= this.index.length) {
        const grown = new Float64Array(this.index.length * 2);
        grown.set(this.index);
        this.index = grown;
      }
      this.index[slot] = this.bytes + this.pendingBytes;
    }
    const line = `${JSON.stringify(source)}\n`;
    this.pending.push(line);
    this.pendingBytes += Buffer.byteLength(line);
    this.length++;
    if (this.pendingBytes >= WRITE_BYTES) await this.flush();
  }

  /** Writes what is buffered; the list can be read from then on. */
  async seal(): Promise<void> {
    await this.flush();
    this.sealed = true;
  }

  private async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const buf = Buffer.from(this.pending.join(''), 'utf8');
    this.pending = [];
    this.pendingBytes = 0;
    let at = 0;
    while (at < buf.length) {
      const { bytesWritten } = await this.fh.write(buf, at, buf.length - at, this.bytes + at);
      at += bytesWritten;
    }
    this.bytes += buf.length;
  }

  /** The input a source stands for: a file path (a URL is left for the caller to map to its download). */
  resolve(source: string): ResolvedInput {
    return { id: this.idOf(source), label: source, file: source };
  }

  async slice(start: number, end: number): Promise<ResolvedInput[]> {
    return (await this.sources(start, end)).map((s) => this.resolve(s));
  }

  /** The sources of lines [start, end). */
  async sources(start: number, end: number): Promise<string[]> {
    this.checkSealed();
    start = Math.max(0, start);
    end = Math.min(this.length, end);
    const out: string[] = [];
    if (start >= end) return out;
    const first = Math.floor(start / INDEX_STEP);
    let skip = start - first * INDEX_STEP;
    let position = this.index[first]!;
    // Sized to the lines asked for (a batch is a few kilobytes), not a whole 64 KiB read per batch.
    const average = this.length > 0 ? this.bytes / this.length : 64;
    const chunk = Buffer.allocUnsafe(Math.min(READ_BYTES, Math.max(1024, Math.ceil(average * (end - start + skip) * 1.25) + 256)));
    const lines = new LineSplitter();
    while (out.length < end - start && position < this.bytes) {
      const { bytesRead } = await this.fh.read(chunk, 0, Math.min(chunk.length, this.bytes - position), position);
      if (bytesRead === 0) break;
      position += bytesRead;
      for (const source of lines.take(chunk.subarray(0, bytesRead))) {
        if (skip > 0) skip--;
        else if (out.length < end - start) out.push(source);
      }
    }
    return out;
  }

  /** Every source in order, read a chunk at a time. */
  async *[Symbol.asyncIterator](): AsyncGenerator<string, void, undefined> {
    const step = 4096;
    for (let start = 0; start < this.length; start += step) yield* await this.sources(start, start + step);
  }

  /**
   * The ids in list order, read synchronously (for writers that check each row's id against the run's
   * order inside a synchronous call); memory holds one read buffer.
   */
  *ids(): Generator<string, void, undefined> {
    this.checkSealed();
    const chunk = Buffer.allocUnsafe(READ_BYTES);
    const lines = new LineSplitter();
    let position = 0;
    while (position < this.bytes) {
      const bytesRead = readSync(this.fh.fd, chunk, 0, Math.min(chunk.length, this.bytes - position), position);
      if (bytesRead === 0) break;
      position += bytesRead;
      for (const source of lines.take(chunk.subarray(0, bytesRead))) yield this.idOf(source);
    }
  }

  /** The ids in list order with their count, for writers that check their rows' order (csv-stream.ts). */
  idOrder(): { readonly length: number; [Symbol.iterator](): Iterator<string> } {
    return { length: this.length, [Symbol.iterator]: () => this.ids() };
  }

  async close(): Promise<void> {
    await this.fh.close().catch(() => undefined);
  }

  private checkSealed(): void {
    if (!this.sealed) throw new Error('internal: ImageListFile read before seal');
  }
}

/** Splits the bytes of successive reads into the list's sources (one JSON string a line). */
class LineSplitter {
  /** The start of a line cut off by the end of the last read. */
  private carry: Buffer | undefined;

  /** The sources whose lines `bytes` completes (`bytes` may be reused by the caller afterwards). */
  take(bytes: Buffer): string[] {
    const buf = this.carry ? Buffer.concat([this.carry, bytes]) : bytes;
    const out: string[] = [];
    let at = 0;
    for (let nl = buf.indexOf(0x0a, at); nl !== -1; nl = buf.indexOf(0x0a, at)) {
      out.push(JSON.parse(buf.toString('utf8', at, nl)) as string);
      at = nl + 1;
    }
    this.carry = at < buf.length ? Buffer.from(buf.subarray(at)) : undefined;
    return out;
  }
}

import { promises as fs } from 'node:fs';
import os from 'node:os';
import { AtomicFile, writeAtomically } from './atomic-write.js';
import { Img2PromptError, errorMessage } from './errors.js';
import { readOptions } from './options.js';
import type { Rows } from './rows.js';
import { openToRead } from './open-to-read.js';

/**
 * NumPy .npy files of little-endian float32 ('<f4', C order), the format embeddings are exchanged in
 * (`numpy.load` reads what we write, and we read what `numpy.save` writes for float32 arrays).
 *
 * Layout (NPY format spec, version 1.0): the magic "\x93NUMPY", version bytes 1 0, a uint16 LE header
 * length, then an ASCII Python dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (N, D), }
 * padded with spaces and ended by '\n' so that the data starts on a 64-byte boundary. Versions 2.0
 * (uint32 header length) and 3.0 (UTF-8 header) are accepted on read.
 */

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY
const ALIGN = 64;

if (os.endianness() !== 'LE') {
  // Float32Array views the bytes in host order; '<f4' is little-endian.
  throw new Error('img2prompt: .npy support needs a little-endian host');
}

export interface NpyArray {
  data: Float32Array;
  shape: number[];
}

function checkShape(shape: readonly number[], length: number | undefined, file: string): void {
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new Img2PromptError(file, `shape must be a list of non-negative integers, got [${String(shape)}]`);
  }
  const count = shape.reduce((a, b) => a * b, 1);
  if (length !== undefined && count !== length) {
    throw new Img2PromptError(file, `shape [${shape.join(', ')}] needs ${count} values, the array has ${length}`);
  }
}

/** Python repr of a shape tuple: (), (3,), (3, 4). */
function shapeRepr(shape: readonly number[]): string {
  if (shape.length === 1) return `(${shape[0]},)`;
  return `(${shape.join(', ')})`;
}

/** The complete header (magic through the final '\n') for a '<f4' C-order array of `shape`. */
export function npyHeader(shape: readonly number[]): Buffer {
  checkShape(shape, undefined, 'npy');
  const dict = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shapeRepr(shape)}, }`;
  const prefix = MAGIC.length + 2 + 2;
  // Spaces then '\n' so that prefix + dict + padding is a multiple of ALIGN.
  const unpadded = prefix + dict.length + 1;
  const pad = (ALIGN - (unpadded % ALIGN)) % ALIGN;
  const text = dict + ' '.repeat(pad) + '\n';
  const header = Buffer.alloc(prefix + text.length);
  MAGIC.copy(header, 0);
  header[6] = 1;
  header[7] = 0;
  header.writeUInt16LE(text.length, 8);
  header.write(text, prefix, 'latin1');
  return header;
}

function bytesOf(data: Float32Array): Buffer {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/** The whole .npy file in memory (small arrays, tests). */
export function encodeNpy(data: Float32Array, shape: readonly number[]): Buffer {
  checkShape(shape, data.length, 'npy');
  return Buffer.concat([npyHeader(shape), bytesOf(data)]);
}

/**
 * Write `data` with `shape` to `file` atomically (temp file + rename): a reader never sees half an
 * array. The data is written straight from the array's memory, no copy.
 */
export async function writeNpy(file: string, data: Float32Array, shape: readonly number[]): Promise<void> {
  if (!(data instanceof Float32Array)) throw new Img2PromptError(file, 'npy data must be a Float32Array');
  checkShape(shape, data.length, file);
  await writeAtomically(file, async (out) => {
    await out.write(npyHeader(shape));
    await out.write(bytesOf(data));
  });
}

interface ParsedHeader {
  shape: number[];
  dataOffset: number;
}

/** Reads the Python dict literal of an NPY header; only the three keys the spec defines are allowed. */
function parseHeaderDict(text: string, file: string): number[] {
  const body = text.trim();
  if (!body.startsWith('{') || !body.endsWith('}')) throw new Img2PromptError(file, `.npy header is not a dict: ${body.slice(0, 80)}`, { code: 'FILE_INVALID' });
  const descr = /['"]descr['"]\s*:\s*['"]([^'"]*)['"]/.exec(body);
  const fortran = /['"]fortran_order['"]\s*:\s*(True|False)/.exec(body);
  const shapeMatch = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(body);
  if (!descr || !fortran || !shapeMatch) {
    throw new Img2PromptError(file, `.npy header lacks descr, fortran_order or shape: ${body.slice(0, 120)}`, { code: 'FILE_INVALID' });
  }
  const dtype = descr[1];
  // '<f4' is what we write; '=f4' would mean native order, little-endian on the hosts we support.
  if (dtype !== '<f4' && dtype !== '=f4') {
    throw new Img2PromptError(file, `.npy dtype is '${dtype}', expected little-endian float32 '<f4'`, { code: 'FILE_INVALID' });
  }
  if (fortran[1] !== 'False') throw new Img2PromptError(file, '.npy array is in Fortran order; only C order is supported', { code: 'FILE_INVALID' });
  const parts = shapeMatch[1].split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  const shape = parts.map((p) => {
    const m = /^(\d+)L?$/.exec(p); // Python 2 wrote longs as 3L
    if (!m) throw new Img2PromptError(file, `.npy shape has a bad dimension '${p}'`, { code: 'FILE_INVALID' });
    const n = Number(m[1]);
    if (!Number.isSafeInteger(n)) throw new Img2PromptError(file, `.npy shape dimension ${p} is too large`, { code: 'FILE_INVALID' });
    return n;
  });
  return shape;
}

function parseHeader(head: Buffer, file: string): ParsedHeader {
  if (head.length < 10 || !head.subarray(0, 6).equals(MAGIC)) throw new Img2PromptError(file, 'not a .npy file (bad magic)', { code: 'FILE_INVALID' });
  const major = head[6];
  const minor = head[7];
  let lenBytes: number;
  if (major === 1 && minor === 0) lenBytes = 2;
  else if ((major === 2 || major === 3) && minor === 0) lenBytes = 4;
  else throw new Img2PromptError(file, `unsupported .npy version ${major}.${minor}`, { code: 'FILE_INVALID' });
  if (head.length < 8 + lenBytes) throw new Img2PromptError(file, '.npy header is truncated', { code: 'FILE_INVALID' });
  const headerLen = lenBytes === 2 ? head.readUInt16LE(8) : head.readUInt32LE(8);
  const dataOffset = 8 + lenBytes + headerLen;
  if (head.length < dataOffset) throw new Img2PromptError(file, '.npy header is truncated', { code: 'FILE_INVALID' });
  const text = head.subarray(8 + lenBytes, dataOffset).toString(major === 3 ? 'utf8' : 'latin1');
  return { shape: parseHeaderDict(text, file), dataOffset };
}

/** Parse a whole .npy file held in memory. The data is copied into a fresh Float32Array. */
export function decodeNpy(bytes: Uint8Array, file = 'npy'): NpyArray {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const { shape, dataOffset } = parseHeader(buf, file);
  const count = shape.reduce((a, b) => a * b, 1);
  const available = buf.length - dataOffset;
  if (available !== count * 4) {
    throw new Img2PromptError(file, `.npy shape [${shape.join(', ')}] needs ${count * 4} data bytes, the file has ${available}`, { code: 'FILE_INVALID' });
  }
  const data = new Float32Array(count);
  Buffer.from(data.buffer).set(buf.subarray(dataOffset));
  return { data, shape };
}

/**
 * Read a float32 .npy file. Throws Img2PromptError naming the file on a bad magic, version, dtype,
 * order or a data size that does not match the shape (a truncated file). `expectDims` checks the
 * number of dimensions (2 for an embedding matrix [N, D]).
 */
export async function readNpy(file: string, options: { expectDims?: number } = {}): Promise<NpyArray> {
  const o = readOptions(options, 'readNpy()');
  options = { expectDims: o.int('expectDims', { min: 0 }) };
  o.done();
  const fh = await openToRead(file);
  try {
    const size = (await fh.stat()).size;
    // Header length field first, then the whole header; versions 2/3 may have long headers.
    const probe = Buffer.alloc(Math.min(size, 12));
    await readFully(fh, probe, 0);
    let headLen = probe.length;
    if (probe.length >= 10 && probe.subarray(0, 6).equals(MAGIC)) {
      headLen = probe[6] === 1 ? 10 + probe.readUInt16LE(8) : probe.length >= 12 ? 12 + probe.readUInt32LE(8) : probe.length;
      headLen = Math.min(size, headLen);
    }
    const head = Buffer.alloc(headLen);
    await readFully(fh, head, 0);
    const { shape, dataOffset } = parseHeader(head, file);
    if (options.expectDims !== undefined && shape.length !== options.expectDims) {
      throw new Img2PromptError(file, `expected a ${options.expectDims}-d array, the .npy has shape [${shape.join(', ')}]`, { code: 'FILE_INVALID' });
    }
    const count = shape.reduce((a, b) => a * b, 1);
    const available = size - dataOffset;
    if (available !== count * 4) {
      throw new Img2PromptError(file, `.npy shape [${shape.join(', ')}] needs ${count * 4} data bytes, the file has ${available} (truncated or not float32?)`, { code: 'FILE_INVALID' });
    }
    // Read straight into the array's memory: no second copy of a large matrix.
    const data = new Float32Array(count);
    await readFully(fh, Buffer.from(data.buffer), dataOffset);
    return { data, shape };
  } catch (err) {
    if (err instanceof Img2PromptError) throw err;
    throw new Img2PromptError(file, `cannot read: ${errorMessage(err)}`, { code: 'FILE_UNREADABLE', cause: err });
  } finally {
    await fh.close();
  }
}

async function readFully(fh: fs.FileHandle, into: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < into.length) {
    const { bytesRead } = await fh.read(into, done, Math.min(into.length - done, 1 << 30), position + done);
    if (bytesRead === 0) throw new Error(`unexpected end of file at byte ${position + done}`);
    done += bytesRead;
  }
}

/** Read a 2-d float32 .npy as an embedding matrix. */
export async function readNpyMatrix(file: string): Promise<Rows> {
  const { data, shape } = await readNpy(file, { expectDims: 2 });
  return { data, rows: shape[0], dim: shape[1] };
}

/**
 * A [rows, dim] .npy written batch by batch (embedding a large image folder without holding it all
 * twice): rows go to an AtomicFile, which is published onto `file` only once all `rows` have arrived.
 */
export class NpyRowWriter {
  private written = 0;
  private finished = false;

  private constructor(
    readonly file: string,
    readonly rows: number,
    readonly dim: number,
    private readonly out: AtomicFile,
  ) {}

  static async create(file: string, rows: number, dim: number): Promise<NpyRowWriter> {
    checkShape([rows, dim], undefined, file);
    const out = await AtomicFile.create(file);
    try {
      await out.write(npyHeader([rows, dim]));
    } catch (err) {
      await out.abort();
      throw err;
    }
    return new NpyRowWriter(file, rows, dim, out);
  }

  /** Rows written so far. */
  get count(): number {
    return this.written;
  }

  /** Append whole rows (a multiple of `dim` values). */
  async append(data: Float32Array): Promise<void> {
    if (data.length % this.dim !== 0) {
      throw new Img2PromptError(this.file, `${data.length} values are not whole rows of ${this.dim}`);
    }
    const n = data.length / this.dim;
    if (this.written + n > this.rows) {
      throw new Img2PromptError(this.file, `too many rows: ${this.written + n} for a [${this.rows}, ${this.dim}] array`);
    }
    await this.out.write(bytesOf(data));
    this.written += n;
  }

  /** Publish onto the target; throws (and removes the temp) if rows are missing. */
  async finish(): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    if (this.written !== this.rows) {
      await this.abort();
      throw new Img2PromptError(this.file, `only ${this.written} of ${this.rows} rows were written; file not created`);
    }
    await this.out.commit();
  }

  /** Drop the partial file. */
  async abort(): Promise<void> {
    await this.out.abort();
  }
}

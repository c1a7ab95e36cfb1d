import { closeSync, openSync, readSync, fstatSync, promises as fs } from 'node:fs';
import { constants as bufferConstants } from 'node:buffer';
import { Img2PromptError, readErrorReason } from '../util/errors.js';
import { writeAtomically } from '../util/atomic-write.js';
import { openToRead } from '../util/open-to-read.js';

/**
 * Reader and writer for the .safetensors format: an 8-byte little-endian header length, a JSON header
 * mapping tensor names to `{dtype, shape, data_offsets: [begin, end]}` (offsets relative to the data
 * section), an optional `__metadata__` map of strings, then the raw little-endian tensor bytes.
 */

export type SafetensorsDType =
  | 'F64' | 'F32' | 'F16' | 'BF16'
  | 'I64' | 'I32' | 'I16' | 'I8'
  | 'U64' | 'U32' | 'U16' | 'U8'
  | 'BOOL' | 'F8_E4M3' | 'F8_E5M2';

/** Typed-array view that each dtype is exposed as (16-bit floats stay raw bits in a Uint16Array). */
export type SafetensorsData =
  | Float64Array | Float32Array | Uint16Array
  | BigInt64Array | Int32Array | Int16Array | Int8Array
  | BigUint64Array | Uint32Array | Uint8Array;

export interface SafeTensor {
  readonly name: string;
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  /** The tensor's bytes (a view into the file buffer). */
  readonly bytes: Uint8Array;
  /** The elements as a typed array: a view when the bytes are aligned for it, a copy otherwise. */
  readonly data: SafetensorsData;
}

export interface SafetensorsFile {
  readonly path: string;
  readonly metadata: Readonly<Record<string, string>>;
  /** In file order (ascending data offset). */
  readonly tensors: ReadonlyMap<string, SafeTensor>;
}

interface DTypeInfo {
  bytes: number;
  view: (buf: ArrayBufferLike, byteOffset: number, length: number) => SafetensorsData;
}

const DTYPES: Record<SafetensorsDType, DTypeInfo> = {
  F64: { bytes: 8, view: (b, o, n) => new Float64Array(b, o, n) },
  F32: { bytes: 4, view: (b, o, n) => new Float32Array(b, o, n) },
  F16: { bytes: 2, view: (b, o, n) => new Uint16Array(b, o, n) },
  BF16: { bytes: 2, view: (b, o, n) => new Uint16Array(b, o, n) },
  I64: { bytes: 8, view: (b, o, n) => new BigInt64Array(b, o, n) },
  I32: { bytes: 4, view: (b, o, n) => new Int32Array(b, o, n) },
  I16: { bytes: 2, view: (b, o, n) => new Int16Array(b, o, n) },
  I8: { bytes: 1, view: (b, o, n) => new Int8Array(b, o, n) },
  U64: { bytes: 8, view: (b, o, n) => new BigUint64Array(b, o, n) },
  U32: { bytes: 4, view: (b, o, n) => new Uint32Array(b, o, n) },
  U16: { bytes: 2, view: (b, o, n) => new Uint16Array(b, o, n) },
  U8: { bytes: 1, view: (b, o, n) => new Uint8Array(b, o, n) },
  BOOL: { bytes: 1, view: (b, o, n) => new Uint8Array(b, o, n) },
  F8_E4M3: { bytes: 1, view: (b, o, n) => new Uint8Array(b, o, n) },
  F8_E5M2: { bytes: 1, view: (b, o, n) => new Uint8Array(b, o, n) },
};

export function isSafetensorsDType(s: unknown): s is SafetensorsDType {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPES, s);
}

export function dtypeByteSize(dtype: SafetensorsDType): number {
  return DTYPES[dtype].bytes;
}

/** Real headers are a few hundred KB at most; a huge length means a corrupt or foreign file. */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

interface HeaderEntry {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  begin: number;
  end: number;
}

interface ParsedHeader {
  dataStart: number;
  metadata: Record<string, string>;
  entries: HeaderEntry[];
}

function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function readHeaderLength(prefix: Uint8Array, fileSize: number, file: string): number {
  if (fileSize < 8) throw new Img2PromptError(file, `truncated: ${fileSize} bytes, shorter than the 8-byte header length`, { code: 'FILE_INVALID' });
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(fileSize - 8)) {
    throw new Img2PromptError(file, `truncated: header length ${n} exceeds the ${fileSize - 8} bytes after the length field`, { code: 'FILE_INVALID' });
  }
  if (n > BigInt(MAX_HEADER_BYTES)) throw new Img2PromptError(file, `corrupt header: header length ${n} is implausibly large`, { code: 'FILE_INVALID' });
  if (n < 2n) throw new Img2PromptError(file, `corrupt header: header length ${n} is too short for a JSON object`, { code: 'FILE_INVALID' });
  return Number(n);
}

/** Validate the JSON header against the size of the data section; every failure names the file. */
function parseHeader(headerBytes: Uint8Array, fileSize: number, file: string): ParsedHeader {
  const dataStart = 8 + headerBytes.length;
  const dataLength = fileSize - dataStart;
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch (err) {
    throw new Img2PromptError(file, `corrupt header: not valid UTF-8 JSON (${err instanceof Error ? err.message : String(err)})`, { code: 'FILE_INVALID' });
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new Img2PromptError(file, 'corrupt header: the header is not a JSON object', { code: 'FILE_INVALID' });
  }
  const metadata: Record<string, string> = {};
  const entries: HeaderEntry[] = [];
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
        throw new Img2PromptError(file, 'corrupt header: __metadata__ is not an object', { code: 'FILE_INVALID' });
      }
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') throw new Img2PromptError(file, `corrupt header: __metadata__.${k} is not a string`, { code: 'FILE_INVALID' });
        metadata[k] = v;
      }
      continue;
    }
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
      throw new Img2PromptError(file, `corrupt header: entry "${name}" is not an object`, { code: 'FILE_INVALID' });
    }
    const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
    if (!isSafetensorsDType(dtype)) throw new Img2PromptError(file, `corrupt header: tensor "${name}" has unknown dtype ${JSON.stringify(dtype)}`, { code: 'FILE_INVALID' });
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new Img2PromptError(file, `corrupt header: tensor "${name}" has an invalid shape ${JSON.stringify(shape)}`, { code: 'FILE_INVALID' });
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      throw new Img2PromptError(file, `corrupt header: tensor "${name}" has invalid data_offsets ${JSON.stringify(offsets)}`, { code: 'FILE_INVALID' });
    }
    const [begin, end] = offsets as [number, number];
    if (begin > end) throw new Img2PromptError(file, `corrupt header: tensor "${name}" has data_offsets [${begin}, ${end}] with begin after end`, { code: 'FILE_INVALID' });
    if (end > dataLength) {
      throw new Img2PromptError(file, `truncated: tensor "${name}" ends at data offset ${end} but the data section holds ${dataLength} bytes`, { code: 'FILE_INVALID' });
    }
    const expected = elementCount(shape as number[]) * DTYPES[dtype].bytes;
    if (end - begin !== expected) {
      throw new Img2PromptError(
        file,
        `corrupt header: tensor "${name}" is ${dtype}[${(shape as number[]).join(',')}] = ${expected} bytes but its data_offsets span ${end - begin}`, { code: 'FILE_INVALID' },
      );
    }
    entries.push({ name, dtype, shape: shape as number[], begin, end });
  }
  // The format requires the tensors to tile the data section exactly: no overlaps, no gaps, no tail.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    if (e.begin < cursor) {
      throw new Img2PromptError(file, `corrupt header: tensor "${e.name}" overlaps tensor "${entries[i - 1]!.name}" in the data section`, { code: 'FILE_INVALID' });
    }
    if (e.begin > cursor) throw new Img2PromptError(file, `corrupt header: unused gap of ${e.begin - cursor} bytes before tensor "${e.name}"`, { code: 'FILE_INVALID' });
    cursor = e.end;
  }
  if (cursor !== dataLength) {
    throw new Img2PromptError(file, `corrupt header: ${dataLength - cursor} trailing bytes after the last tensor`, { code: 'FILE_INVALID' });
  }
  return { dataStart, metadata, entries };
}

/** A tensor over `data` (exactly shape × dtype-size bytes); other weight formats build theirs with it too. */
export function tensorFromBytes(name: string, dtype: SafetensorsDType, shape: readonly number[], data: Uint8Array): SafeTensor {
  const info = DTYPES[dtype];
  const count = elementCount(shape);
  let bytes = data;
  if (data.byteOffset % info.bytes !== 0) {
    bytes = new Uint8Array(data.length); // a fresh copy starts at offset 0, so it is aligned
    bytes.set(data);
  }
  const view = info.view(bytes.buffer, bytes.byteOffset, count);
  return { name, dtype, shape, bytes: data, data: view };
}

function makeTensor(e: HeaderEntry, data: Uint8Array): SafeTensor {
  return tensorFromBytes(e.name, e.dtype, e.shape, data);
}

function assemble(path: string, header: ParsedHeader, tensorBytes: (e: HeaderEntry) => Uint8Array): SafetensorsFile {
  const tensors = new Map<string, SafeTensor>();
  for (const e of header.entries) tensors.set(e.name, makeTensor(e, tensorBytes(e)));
  return { path, metadata: header.metadata, tensors };
}

/** Fill `target` from `fd` at `position`; one read call is capped at 2 GiB by the OS. */
function readFullySync(fd: number, target: Uint8Array, position: number, file: string): void {
  let done = 0;
  while (done < target.length) {
    const n = readSync(fd, target, done, Math.min(target.length - done, 1 << 30), position + done);
    if (n === 0) throw new Img2PromptError(file, `truncated: file ended while reading at byte ${position + done}`, { code: 'FILE_INVALID' });
    done += n;
  }
}

/** Fill `target` from the file at `position`; an early end is a truncation error naming `file`. */
export async function readFully(fh: fs.FileHandle, target: Uint8Array, position: number, file: string): Promise<void> {
  let done = 0;
  while (done < target.length) {
    const { bytesRead } = await fh.read(target, done, Math.min(target.length - done, 1 << 30), position + done);
    if (bytesRead === 0) throw new Img2PromptError(file, `truncated: file ended while reading at byte ${position + done}`, { code: 'FILE_INVALID' });
    done += bytesRead;
  }
}

/**
 * The data section goes into one buffer when it fits (tensors are views into it), else one buffer per
 * tensor. allocUnsafeSlow gives a non-pooled buffer at offset 0, so the alignment of each tensor is the
 * alignment of its data offset.
 */
function planBuffers(header: ParsedHeader, fileSize: number): { whole: boolean; length: number } {
  const length = fileSize - header.dataStart;
  return { whole: length <= bufferConstants.MAX_LENGTH, length };
}

/** Parse a .safetensors file already in memory (the tensors are views into `buf`). */
export function parseSafetensors(buf: Uint8Array, path = '<buffer>'): SafetensorsFile {
  const headerLength = readHeaderLength(buf.subarray(0, 8), buf.length, path);
  const header = parseHeader(buf.subarray(8, 8 + headerLength), buf.length, path);
  return assemble(path, header, (e) => buf.subarray(header.dataStart + e.begin, header.dataStart + e.end));
}

export function readSafetensorsSync(path: string): SafetensorsFile {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw new Img2PromptError(path, `cannot read: ${readErrorReason(err)}`, { code: 'FILE_UNREADABLE', cause: err });
  }
  try {
    const fileSize = fstatSync(fd).size;
    const prefix = new Uint8Array(8);
    if (fileSize >= 8) readFullySync(fd, prefix, 0, path);
    const headerLength = readHeaderLength(prefix, fileSize, path);
    const headerBytes = new Uint8Array(headerLength);
    readFullySync(fd, headerBytes, 8, path);
    const header = parseHeader(headerBytes, fileSize, path);
    const plan = planBuffers(header, fileSize);
    if (plan.whole) {
      const data = Buffer.allocUnsafeSlow(plan.length);
      readFullySync(fd, data, header.dataStart, path);
      return assemble(path, header, (e) => data.subarray(e.begin, e.end));
    }
    return assemble(path, header, (e) => {
      const data = Buffer.allocUnsafeSlow(e.end - e.begin);
      readFullySync(fd, data, header.dataStart + e.begin, path);
      return data;
    });
  } finally {
    closeSync(fd);
  }
}

export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  const fh = await openToRead(path);
  try {
    const fileSize = (await fh.stat()).size;
    const prefix = new Uint8Array(8);
    if (fileSize >= 8) await readFully(fh, prefix, 0, path);
    const headerLength = readHeaderLength(prefix, fileSize, path);
    const headerBytes = new Uint8Array(headerLength);
    await readFully(fh, headerBytes, 8, path);
    const header = parseHeader(headerBytes, fileSize, path);
    const plan = planBuffers(header, fileSize);
    const perTensor = new Map<string, Uint8Array>();
    if (plan.whole) {
      const data = Buffer.allocUnsafeSlow(plan.length);
      await readFully(fh, data, header.dataStart, path);
      return assemble(path, header, (e) => data.subarray(e.begin, e.end));
    }
    for (const e of header.entries) {
      const data = Buffer.allocUnsafeSlow(e.end - e.begin);
      await readFully(fh, data, header.dataStart + e.begin, path);
      perTensor.set(e.name, data);
    }
    return assemble(path, header, (e) => perTensor.get(e.name)!);
  } finally {
    await fh.close();
  }
}

/** A tensor's values as float32, widening F16/BF16/F64 (the graph builders want float32 weights). */
export function tensorToFloat32(t: SafeTensor): Float32Array {
  switch (t.dtype) {
    case 'F32':
      return t.data as Float32Array;
    case 'F64':
      return Float32Array.from(t.data as Float64Array);
    case 'BF16': {
      // bfloat16 is the top half of a float32.
      const src = t.data as Uint16Array;
      const bits = new Uint32Array(src.length);
      for (let i = 0; i < src.length; i++) bits[i] = src[i]! << 16;
      return new Float32Array(bits.buffer);
    }
    case 'F16': {
      const src = t.data as Uint16Array;
      const out = new Float32Array(src.length);
      for (let i = 0; i < src.length; i++) out[i] = halfToFloat(src[i]!);
      return out;
    }
    default:
      throw new Img2PromptError(undefined, `tensor "${t.name}" is ${t.dtype}, not a floating-point type`, { code: 'FILE_INVALID' });
  }
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

export interface SafetensorsInput {
  name: string;
  dtype: SafetensorsDType;
  shape: readonly number[];
  /** Any typed array (or raw bytes) holding exactly shape × dtype-size bytes, little-endian. */
  data: ArrayBufferView;
}

/**
 * Write tensors atomically. The header is space-padded so the data section starts 8-byte aligned and
 * tensors are laid out widest dtype first, which lets readers take zero-copy views of every tensor.
 */
export async function writeSafetensors(
  path: string,
  tensors: readonly SafetensorsInput[],
  metadata?: Record<string, string>,
): Promise<void> {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  const chunks: Uint8Array[] = [];
  let offset = 0;
  // Widest elements first (stable otherwise): tensors tile the data section with no gaps, so this is
  // what keeps every tensor aligned for its element type.
  const ordered = [...tensors].sort((a, b) => (DTYPES[b.dtype]?.bytes ?? 0) - (DTYPES[a.dtype]?.bytes ?? 0));
  for (const t of ordered) {
    if (t.name === '__metadata__') throw new Img2PromptError(path, 'cannot write: "__metadata__" is reserved and cannot name a tensor');
    if (Object.prototype.hasOwnProperty.call(header, t.name)) throw new Img2PromptError(path, `cannot write: duplicate tensor name "${t.name}"`);
    if (!isSafetensorsDType(t.dtype)) throw new Img2PromptError(path, `cannot write: tensor "${t.name}" has unknown dtype ${String(t.dtype)}`);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new Img2PromptError(path, `cannot write: tensor "${t.name}" has an invalid shape [${t.shape.join(',')}]`);
    }
    const expected = elementCount(t.shape) * DTYPES[t.dtype].bytes;
    if (t.data.byteLength !== expected) {
      throw new Img2PromptError(
        path,
        `cannot write: tensor "${t.name}" is ${t.dtype}[${t.shape.join(',')}] = ${expected} bytes but its data holds ${t.data.byteLength}`,
      );
    }
    header[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + expected] };
    chunks.push(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    offset += expected;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf-8');
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length), 0);
  await writeAtomically(path, async (out) => {
    for (const c of [prefix, json, ...chunks]) await out.write(c);
  });
}

import { promises as fs } from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { Img2PromptError, errorMessage, osReason } from '../util/errors.js';
import { publishFile, removeStaleTemps, writeFileAtomic, writeFully } from '../util/atomic-write.js';
import { outputFs, type OutputHandle } from '../util/output-fs.js';
import { normalizeRowInPlace, rowDefect, type Rows } from '../util/rows.js';
import { modelHome } from '../models/cache.js';
import { toFloat16 } from '../rank/float16.js';
import { labelsHash } from './label-banks.js';
import { DEFAULT_BANK_DTYPE, type BankDtype, type ClipTextSide, type EmbeddedBank, type LabelBankDef } from './types.js';

/**
 * On-disk cache of embedded label banks, one file per bank and model:
 *
 *   <home>/banks/<model id, sanitised>/<bank>.bank               finished bank
 *   <home>/banks/<model id, sanitised>/<bank>.bank.partial       bank being built (header space + rows so far)
 *   <home>/banks/<model id, sanitised>/<bank>.bank.partial.json  how many rows of the partial are done
 *
 * A `.bank` file is a header followed by the [count, dim] row-major matrix of L2-normalised label
 * embeddings (little-endian float32, or float16 bits). Header, all integers little-endian:
 *
 *   0   8  magic "I2PBANK\0"
 *   8   4  format version (2)
 *   12  4  header size in bytes = offset of the matrix (a multiple of 64, so typed-array views align)
 *   16  4  dim
 *   20  4  count (rows)
 *   24  4  dtype: 1 = fp32, 2 = fp16
 *   28  4  reserved, 0
 *   32  32 sha256 of the matrix bytes
 *   64  ..  model id, model weight hash, labels hash, tokenizer id: each a u16 byte length + UTF-8 bytes
 *   ..      zero padding
 *   end-32  sha256 of every header byte before it
 *
 * A finished file appears only through a rename of the complete partial, and loading checks both
 * checksums and the exact size, so a torn or corrupted file is rebuilt, never used.
 *
 * Loading reads the whole file into one ArrayBuffer and hands out a typed-array view of the matrix
 * (no copy). The files are small enough for that (flavors at 768-d fp16: ~150 MB) and it avoids an
 * mmap dependency; the price is one read plus one sha256 pass per process.
 */

const MAGIC = Buffer.from('I2PBANK\0', 'latin1');
/** 2: the tokenizer id joined the key (version-1 files, built before text cleaning matched the references, are rebuilt). */
export const BANK_FORMAT_VERSION = 2;
const FIXED_BYTES = 64;
const CHECKSUM_BYTES = 32;
const ALIGN = 64;
const DTYPE_CODES: Record<BankDtype, number> = { fp32: 1, fp16: 2 };

/** Everything a cached bank must match to be reused. */
export interface BankKey {
  modelId: string;
  weightHash: string;
  labelsHash: string;
  /** How the labels became token ids (ClipTextSide.tokenizerId). */
  tokenizerId: string;
  dim: number;
  count: number;
  dtype: BankDtype;
}

export interface BankHeader extends BankKey {
  version: number;
  headerBytes: number;
  /** sha256 (hex) of the matrix bytes. */
  payloadSha256: string;
}

export function bytesPerValue(dtype: BankDtype): number {
  return dtype === 'fp16' ? 2 : 4;
}

/** Model ids like "ViT-L-14/openai" become one safe folder name; the header keeps the exact id. */
export function sanitiseModelId(modelId: string): string {
  const safe = modelId.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[._]+/, '');
  return safe === '' ? '_' : safe;
}

/** Where bank `bankName` of model `modelId` is cached under `home` (default modelHome()). */
export function bankFilePath(modelId: string, bankName: string, home: string = modelHome()): string {
  if (!/^[a-z0-9][a-z0-9._-]*$/.test(bankName)) {
    throw new Img2PromptError(undefined, `invalid bank name "${bankName}": use lowercase letters, digits, '.', '_' and '-'`);
  }
  return path.join(home, 'banks', sanitiseModelId(modelId), `${bankName}.bank`);
}

function headerStrings(key: BankKey): Buffer[] {
  return [key.modelId, key.weightHash, key.labelsHash, key.tokenizerId].map((s) => Buffer.from(s, 'utf8'));
}

/** Header size for `key`: fixed part, strings, checksum, rounded up to the alignment. */
export function headerSize(key: BankKey): number {
  const strings = headerStrings(key).reduce((n, b) => n + 2 + b.length, 0);
  return Math.ceil((FIXED_BYTES + strings + CHECKSUM_BYTES) / ALIGN) * ALIGN;
}

export function encodeHeader(key: BankKey, payloadSha256: string): Buffer {
  const size = headerSize(key);
  const buf = Buffer.alloc(size);
  MAGIC.copy(buf, 0);
  buf.writeUInt32LE(BANK_FORMAT_VERSION, 8);
  buf.writeUInt32LE(size, 12);
  buf.writeUInt32LE(key.dim, 16);
  buf.writeUInt32LE(key.count, 20);
  buf.writeUInt32LE(DTYPE_CODES[key.dtype], 24);
  Buffer.from(payloadSha256, 'hex').copy(buf, 32);
  let at = FIXED_BYTES;
  for (const s of headerStrings(key)) {
    if (s.length > 0xffff) throw new Img2PromptError(undefined, 'bank header string longer than 65535 bytes');
    buf.writeUInt16LE(s.length, at);
    s.copy(buf, at + 2);
    at += 2 + s.length;
  }
  createHash('sha256').update(buf.subarray(0, size - CHECKSUM_BYTES)).digest().copy(buf, size - CHECKSUM_BYTES);
  return buf;
}

/** Parses and checks a header; throws Img2PromptError(file, ...) when it is not a valid bank header. */
export function decodeHeader(buf: Uint8Array, file: string): BankHeader {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < FIXED_BYTES + CHECKSUM_BYTES || !b.subarray(0, 8).equals(MAGIC)) {
    throw new Img2PromptError(file, 'not a label bank file (bad magic)', { code: 'FILE_INVALID' });
  }
  const version = b.readUInt32LE(8);
  if (version !== BANK_FORMAT_VERSION) throw new Img2PromptError(file, `bank format version ${version}, expected ${BANK_FORMAT_VERSION}`, { code: 'FILE_INVALID' });
  const headerBytes = b.readUInt32LE(12);
  if (headerBytes % ALIGN !== 0 || headerBytes < FIXED_BYTES + CHECKSUM_BYTES || headerBytes > b.length) {
    throw new Img2PromptError(file, `bank header size ${headerBytes} is invalid or beyond the file (${b.length} bytes)`, { code: 'FILE_INVALID' });
  }
  const sum = createHash('sha256').update(b.subarray(0, headerBytes - CHECKSUM_BYTES)).digest();
  if (!sum.equals(b.subarray(headerBytes - CHECKSUM_BYTES, headerBytes))) {
    throw new Img2PromptError(file, 'bank header checksum mismatch (file corrupted)', { code: 'FILE_INVALID' });
  }
  const code = b.readUInt32LE(24);
  const dtype = (Object.keys(DTYPE_CODES) as BankDtype[]).find((d) => DTYPE_CODES[d] === code);
  if (!dtype) throw new Img2PromptError(file, `unknown bank dtype code ${code}`, { code: 'FILE_INVALID' });
  const strings: string[] = [];
  let at = FIXED_BYTES;
  for (let i = 0; i < 4; i++) {
    const len = b.readUInt16LE(at);
    if (at + 2 + len > headerBytes - CHECKSUM_BYTES) throw new Img2PromptError(file, 'bank header strings overrun the header', { code: 'FILE_INVALID' });
    strings.push(b.toString('utf8', at + 2, at + 2 + len));
    at += 2 + len;
  }
  return {
    version,
    headerBytes,
    dim: b.readUInt32LE(16),
    count: b.readUInt32LE(20),
    dtype,
    payloadSha256: b.toString('hex', 32, 64),
    modelId: strings[0],
    weightHash: strings[1],
    labelsHash: strings[2],
    tokenizerId: strings[3],
  };
}

export interface BankFile {
  header: BankHeader;
  /** [count, dim] over the file's buffer (no copy): float32 values for fp32, half bits for fp16. */
  matrix: Rows<Float32Array | Uint16Array>;
}

/**
 * Reads and verifies a finished bank file: header checksum, exact size, matrix checksum. Throws
 * Img2PromptError naming the file when it is missing, truncated or corrupted.
 */
export async function readBankFile(file: string): Promise<BankFile> {
  let buf: Buffer;
  try {
    buf = await fs.readFile(file);
  } catch (err) {
    throw new Img2PromptError(file, `cannot read bank: ${errorMessage(err)}`, { code: 'FILE_UNREADABLE', cause: err });
  }
  const header = decodeHeader(buf, file);
  const values = header.count * header.dim;
  const expected = header.headerBytes + values * bytesPerValue(header.dtype);
  if (buf.length !== expected) {
    throw new Img2PromptError(file, `bank is ${buf.length} bytes, its header says ${expected} (truncated or corrupted)`, { code: 'FILE_INVALID' });
  }
  const payload = buf.subarray(header.headerBytes);
  if (createHash('sha256').update(payload).digest('hex') !== header.payloadSha256) {
    throw new Img2PromptError(file, 'bank matrix checksum mismatch (file corrupted)', { code: 'FILE_INVALID' });
  }
  // readFile normally hands back a buffer of its own at offset 0; copy only if a view would misalign.
  const aligned = payload.byteOffset % 4 === 0 ? payload : Buffer.from(payload);
  const data =
    header.dtype === 'fp16'
      ? new Uint16Array(aligned.buffer, aligned.byteOffset, values)
      : new Float32Array(aligned.buffer, aligned.byteOffset, values);
  return { header, matrix: { data, rows: header.count, dim: header.dim } };
}

/** Why a header does not match what is wanted (undefined when it does). */
export function staleReason(header: BankKey, want: BankKey): string | undefined {
  if (header.modelId !== want.modelId) return `built for model ${header.modelId}`;
  if (header.weightHash !== want.weightHash) return 'built with other model weights';
  if (header.tokenizerId !== want.tokenizerId) return `tokenized by ${header.tokenizerId}, now ${want.tokenizerId}`;
  if (header.dim !== want.dim) return `dimension ${header.dim}, model has ${want.dim}`;
  if (header.labelsHash !== want.labelsHash || header.count !== want.count) return 'labels changed';
  if (header.dtype !== want.dtype) return `stored as ${header.dtype}, ${want.dtype} wanted`;
  return undefined;
}

/** The cache key of `def` embedded by `text` and stored as `dtype`. */
export function bankKey(text: ClipTextSide, def: LabelBankDef, dtype: BankDtype): BankKey {
  return {
    modelId: text.modelId,
    weightHash: text.weightHash,
    labelsHash: labelsHash(def.labels),
    tokenizerId: text.tokenizerId,
    dim: text.dim,
    count: def.labels.length,
    dtype,
  };
}

export interface BankCacheOptions {
  /** Cache root; default modelHome(). */
  home?: string;
  /** Default DEFAULT_BANK_DTYPE ('fp32'). */
  dtype?: BankDtype;
  /** Labels per encoder call and per resumable step; default 4096. */
  chunkSize?: number;
  /** Called after each chunk is safely on disk, with the rows done so far. */
  onChunk?(rowsDone: number, count: number): void;
  /**
   * Called as a bank is built, with the rows embedded so far (also within a chunk): what a caller draws
   * its progress from. The library itself never draws.
   */
  onProgress?(bank: string, rowsDone: number, count: number): void;
  /**
   * Stops a build between chunks (a build takes minutes): the finished chunks stay on disk, so the
   * next build resumes from them. The promise rejects with the signal's reason.
   */
  signal?: AbortSignal;
}

interface PartialRecord extends BankKey {
  format: number;
  headerBytes: number;
  rowsDone: number;
}

/** Rows of a matching partial build that can be kept (0 when there is none or it is for something else). */
async function resumableRows(partial: string, sidecar: string, key: BankKey, headerBytes: number, rowBytes: number): Promise<number> {
  let record: PartialRecord;
  try {
    record = JSON.parse(await fs.readFile(sidecar, 'utf8')) as PartialRecord;
  } catch {
    return 0;
  }
  if (record.format !== BANK_FORMAT_VERSION || record.headerBytes !== headerBytes || staleReason(record, key) !== undefined) return 0;
  let size: number;
  try {
    size = (await fs.stat(partial)).size;
  } catch {
    return 0;
  }
  if (!Number.isInteger(record.rowsDone) || record.rowsDone < 0 || size < headerBytes) return 0;
  // The sidecar is written only after its rows are synced, so rows it claims are on disk; a shorter
  // file means the partial was tampered with, so keep only what is really there.
  return Math.min(record.rowsDone, Math.floor((size - headerBytes) / rowBytes), key.count);
}

/**
 * Checks an encoder's answer and normalises its rows in place with the one normaliser: the file
 * promises unit rows from one arithmetic whatever graph made them (MiniLM's rows come out of an
 * in-graph float32 normalisation whose last bits differ from ours), and the banks already on
 * disk were written this way, so a rebuild gives the same bytes. A zero or non-finite row is refused.
 */
function checkedRows(out: Float32Array, rows: number, dim: number, bank: LabelBankDef): Float32Array {
  if (!(out instanceof Float32Array) || out.length !== rows * dim) {
    throw new Img2PromptError(bank.source, `text encoder returned ${out?.length} values for ${rows} labels of dimension ${dim}`);
  }
  for (let r = 0; r < rows; r++) {
    if (!normalizeRowInPlace(out, r, dim)) {
      const what = rowDefect(out, r, dim) === 'zero' ? 'a zero' : 'a non-finite';
      throw new Img2PromptError(bank.source, `text encoder returned ${what} embedding for label "${bank.labels[r]}"`);
    }
  }
  return out;
}

async function hashRange(fh: OutputHandle, start: number, length: number): Promise<string> {
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(Math.min(8 << 20, Math.max(length, 1)));
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, length - done), start + done);
    if (bytesRead === 0) throw new Error('partial bank ended early');
    hash.update(buf.subarray(0, bytesRead));
    done += bytesRead;
  }
  return hash.digest('hex');
}

/**
 * Embeds `def` with `text` into its cache file, `chunkSize` labels at a time. Each finished chunk is
 * synced to the `.partial` file before the sidecar records it, so a build killed at any moment
 * resumes from its last finished chunk; the `.bank` file appears only by renaming the complete,
 * checksummed partial. Returns the path of the finished file.
 */
export async function buildBankFile(text: ClipTextSide, def: LabelBankDef, options: BankCacheOptions = {}): Promise<string> {
  const dtype = options.dtype ?? DEFAULT_BANK_DTYPE;
  const chunkSize = options.chunkSize ?? 4096;
  if (!Number.isInteger(chunkSize) || chunkSize < 1) throw new Img2PromptError(def.source, `chunk size must be a positive integer, got ${chunkSize}`);
  if (def.labels.length === 0) throw new Img2PromptError(def.source, `label bank "${def.name}" is empty`);
  const final = bankFilePath(text.modelId, def.name, options.home);
  const partial = `${final}.partial`;
  const sidecar = `${partial}.json`;
  const key = bankKey(text, def, dtype);
  const headerBytes = headerSize(key);
  const rowBytes = key.dim * bytesPerValue(dtype);

  await fs.mkdir(path.dirname(final), { recursive: true });
  await removeStaleTemps(sidecar);
  let done = await resumableRows(partial, sidecar, key, headerBytes, rowBytes);
  let fh: OutputHandle;
  try {
    fh = await outputFs.open(partial, done > 0 ? 'r+' : 'w+');
  } catch (err) {
    throw new Img2PromptError(partial, `cannot build label bank "${def.name}": ${osReason(err)}`, { code: 'OUTPUT_FAILED', cause: err });
  }
  const progress = (rows: number) => options.onProgress?.(def.name, rows, key.count);
  try {
    // Header space stays zero (a sparse hole) until the end; drop any unrecorded tail from a kill.
    await fh.truncate(headerBytes + done * rowBytes);
    progress(done);
    while (done < key.count) {
      options.signal?.throwIfAborted();
      const start = done;
      const end = Math.min(start + chunkSize, key.count);
      const raw = await text.encodeTexts(def.labels.slice(start, end), { onProgress: (n) => progress(start + n) });
      const rows = checkedRows(raw, end - start, key.dim, { ...def, labels: def.labels.slice(start, end) });
      const stored = dtype === 'fp16' ? toFloat16(rows) : rows;
      await writeFully(fh, new Uint8Array(stored.buffer, stored.byteOffset, stored.byteLength), headerBytes + start * rowBytes);
      await fh.datasync();
      done = end;
      const record: PartialRecord = { format: BANK_FORMAT_VERSION, ...key, headerBytes, rowsDone: done };
      await writeFileAtomic(sidecar, JSON.stringify(record));
      progress(done);
      options.onChunk?.(done, key.count);
    }
    const header = encodeHeader(key, await hashRange(fh, headerBytes, key.count * rowBytes));
    await writeFully(fh, header, 0);
    await fh.datasync();
    const size = (await fh.stat()).size;
    const expected = headerBytes + key.count * rowBytes;
    if (size !== expected) throw new Error(`the file holds ${size} bytes, expected ${expected}`);
  } catch (err) {
    if (err instanceof Img2PromptError || (options.signal?.aborted && err === options.signal.reason)) throw err;
    throw new Img2PromptError(partial, `cannot build label bank "${def.name}": ${osReason(err)}`, { code: 'OUTPUT_FAILED', cause: err });
  } finally {
    await fh.close();
  }
  await publishFile(partial, final);
  await fs.rm(sidecar, { force: true });
  return final;
}

export interface CachedBank extends EmbeddedBank {
  file: string;
  /** True when this call (re)built the file. */
  built: boolean;
  /** Why it was (re)built: 'missing', 'labels changed', a corruption message, ... */
  reason?: string;
}

/** Loads `def`'s bank from the cache when it matches model, weights, labels and dtype; builds (or resumes) it otherwise. */
export async function loadOrBuildBank(text: ClipTextSide, def: LabelBankDef, options: BankCacheOptions = {}): Promise<CachedBank> {
  const dtype = options.dtype ?? DEFAULT_BANK_DTYPE;
  const want = bankKey(text, def, dtype);
  const file = bankFilePath(text.modelId, def.name, options.home);
  let reason: string;
  try {
    const cached = await readBankFile(file);
    const stale = staleReason(cached.header, want);
    if (stale === undefined) {
      await fs.rm(`${file}.partial.json`, { force: true }); // leftover of a build that finished but was cut off before cleanup
      return { ...def, dtype, matrix: cached.matrix, file, built: false };
    }
    reason = stale;
  } catch (err) {
    const code = (err as { cause?: { code?: string } }).cause?.code;
    reason = code === 'ENOENT' ? 'missing' : errorMessage(err);
  }
  await buildBankFile(text, def, { ...options, dtype });
  const fresh = await readBankFile(file);
  return { ...def, dtype, matrix: fresh.matrix, file, built: true, reason };
}

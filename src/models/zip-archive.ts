/**
 * The central directory of a zip archive whose entries are stored uncompressed, as torch.save writes them (its
 * records are aligned so that a reader can map them in place). Only what such an archive needs: zip64 sizes and
 * offsets for checkpoints over 4 GiB; compressed entries are listed but cannot be read here (a wheel's deflated
 * libraries are streamed by gpu/wheel-zip.ts); no encryption, no multi-disk archives.
 */
import type { promises as fs } from 'node:fs';
import { Img2PromptError } from '../util/errors.js';
import { readFully } from './safetensors.js';

export interface ZipEntry {
  name: string;
  /** Bytes of the entry's data (uncompressed). */
  size: number;
  /** Bytes the entry takes in the archive (= size when stored). */
  compressedSize: number;
  /** Compression method (0: stored). Only stored entries can be read; torch.jit.save deflates its code files. */
  method: number;
  /** Offset of the entry's local header; its data follows the header's name and extra field. */
  headerOffset: number;
}

const EOCD_SIGNATURE = 0x06054b50;
const ZIP64_LOCATOR_SIGNATURE = 0x07064b50;
const ZIP64_EOCD_SIGNATURE = 0x06064b50;
const CENTRAL_SIGNATURE = 0x02014b50;
const LOCAL_SIGNATURE = 0x04034b50;
const EOCD_SIZE = 22;
/** The end record may be followed by a comment of up to 65,535 bytes. */
const MAX_TAIL = EOCD_SIZE + 0xffff;

/** True when `head` (the file's first bytes) starts like a zip archive. */
export function looksLikeZip(head: Uint8Array): boolean {
  return head.length >= 4 && new DataView(head.buffer, head.byteOffset, 4).getUint32(0, true) === LOCAL_SIGNATURE;
}

function u64(view: DataView, at: number, file: string): number {
  const v = view.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Img2PromptError(file, `corrupt zip: a 64-bit size or offset of ${v}`, { code: 'FILE_INVALID' });
  return Number(v);
}

async function readAt(fh: fs.FileHandle, position: number, length: number, file: string): Promise<DataView> {
  const buf = new Uint8Array(length);
  await readFully(fh, buf, position, file);
  return new DataView(buf.buffer);
}

interface Directory {
  count: number;
  offset: number;
  size: number;
}

async function findDirectory(fh: fs.FileHandle, fileSize: number, file: string): Promise<Directory> {
  const tailLength = Math.min(fileSize, MAX_TAIL);
  const tail = await readAt(fh, fileSize - tailLength, tailLength, file);
  let eocd = -1;
  for (let i = tailLength - EOCD_SIZE; i >= 0; i--) {
    if (tail.getUint32(i, true) === EOCD_SIGNATURE) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Img2PromptError(file, 'corrupt zip: no end-of-central-directory record (truncated download?)', { code: 'FILE_INVALID' });
  const dir: Directory = { count: tail.getUint16(eocd + 10, true), size: tail.getUint32(eocd + 12, true), offset: tail.getUint32(eocd + 16, true) };
  const zip64 = dir.count === 0xffff || dir.size === 0xffffffff || dir.offset === 0xffffffff;
  if (!zip64) return dir;
  const locatorAt = fileSize - tailLength + eocd - 20;
  if (locatorAt < 0) throw new Img2PromptError(file, 'corrupt zip: zip64 sizes without a zip64 locator', { code: 'FILE_INVALID' });
  const locator = await readAt(fh, locatorAt, 20, file);
  if (locator.getUint32(0, true) !== ZIP64_LOCATOR_SIGNATURE) throw new Img2PromptError(file, 'corrupt zip: zip64 sizes without a zip64 locator', { code: 'FILE_INVALID' });
  const recordAt = u64(locator, 8, file);
  if (recordAt + 56 > fileSize) throw new Img2PromptError(file, 'corrupt zip: the zip64 end record lies outside the file', { code: 'FILE_INVALID' });
  const record = await readAt(fh, recordAt, 56, file);
  if (record.getUint32(0, true) !== ZIP64_EOCD_SIGNATURE) throw new Img2PromptError(file, 'corrupt zip: bad zip64 end record', { code: 'FILE_INVALID' });
  return { count: u64(record, 32, file), size: u64(record, 40, file), offset: u64(record, 48, file) };
}

/** The zip64 extra field holds, in this order, only the fields whose 32-bit slot is saturated. */
function zip64Fields(extra: DataView, want: { size: boolean; compressed: boolean; offset: boolean }, file: string, name: string) {
  for (let at = 0; at + 4 <= extra.byteLength; ) {
    const id = extra.getUint16(at, true);
    const len = extra.getUint16(at + 2, true);
    if (id === 0x0001) {
      const body = new DataView(extra.buffer, extra.byteOffset + at + 4, Math.min(len, extra.byteLength - at - 4));
      let p = 0;
      const next = (): number => {
        if (p + 8 > body.byteLength) throw new Img2PromptError(file, `corrupt zip: short zip64 field for "${name}"`, { code: 'FILE_INVALID' });
        const v = u64(body, p, file);
        p += 8;
        return v;
      };
      return {
        size: want.size ? next() : undefined,
        compressed: want.compressed ? next() : undefined,
        offset: want.offset ? next() : undefined,
      };
    }
    at += 4 + len;
  }
  throw new Img2PromptError(file, `corrupt zip: "${name}" needs a zip64 field and has none`, { code: 'FILE_INVALID' });
}

/** Every entry of the archive by name. Refuses compressed or encrypted entries, which torch never writes. */
export async function readZipDirectory(fh: fs.FileHandle, fileSize: number, file: string): Promise<Map<string, ZipEntry>> {
  const dir = await findDirectory(fh, fileSize, file);
  if (dir.offset + dir.size > fileSize) throw new Img2PromptError(file, 'corrupt zip: the central directory lies outside the file (truncated?)', { code: 'FILE_INVALID' });
  const raw = await readAt(fh, dir.offset, dir.size, file);
  const entries = new Map<string, ZipEntry>();
  let at = 0;
  for (let i = 0; i < dir.count; i++) {
    if (at + 46 > raw.byteLength || raw.getUint32(at, true) !== CENTRAL_SIGNATURE) {
      throw new Img2PromptError(file, `corrupt zip: central directory entry ${i} is damaged`, { code: 'FILE_INVALID' });
    }
    const flags = raw.getUint16(at + 8, true);
    const method = raw.getUint16(at + 10, true);
    let compressed = raw.getUint32(at + 20, true);
    let size = raw.getUint32(at + 24, true);
    const nameLength = raw.getUint16(at + 28, true);
    const extraLength = raw.getUint16(at + 30, true);
    const commentLength = raw.getUint16(at + 32, true);
    let headerOffset = raw.getUint32(at + 42, true);
    if (at + 46 + nameLength + extraLength > raw.byteLength) throw new Img2PromptError(file, `corrupt zip: central directory entry ${i} is damaged`, { code: 'FILE_INVALID' });
    const name = new TextDecoder().decode(new Uint8Array(raw.buffer, at + 46, nameLength));
    if (size === 0xffffffff || compressed === 0xffffffff || headerOffset === 0xffffffff) {
      const extra = new DataView(raw.buffer, at + 46 + nameLength, extraLength);
      const z = zip64Fields(extra, { size: size === 0xffffffff, compressed: compressed === 0xffffffff, offset: headerOffset === 0xffffffff }, file, name);
      size = z.size ?? size;
      compressed = z.compressed ?? compressed;
      headerOffset = z.offset ?? headerOffset;
    }
    if (flags & 1) throw new Img2PromptError(file, `zip entry "${name}" is encrypted`, { code: 'FILE_INVALID' });
    if (method === 0 && compressed !== size) throw new Img2PromptError(file, `corrupt zip: stored entry "${name}" has two sizes`, { code: 'FILE_INVALID' });
    if (headerOffset + compressed > fileSize) throw new Img2PromptError(file, `truncated: zip entry "${name}" ends past the end of the file`, { code: 'FILE_INVALID' });
    entries.set(name, { name, size, compressedSize: compressed, method, headerOffset });
    at += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}

/** Offset of an entry's data, read from its local header (whose extra field may differ from the directory's). */
export async function zipEntryDataOffset(fh: fs.FileHandle, entry: ZipEntry, fileSize: number, file: string): Promise<number> {
  const header = await readAt(fh, entry.headerOffset, 30, file);
  if (header.getUint32(0, true) !== LOCAL_SIGNATURE) throw new Img2PromptError(file, `corrupt zip: bad local header for "${entry.name}"`, { code: 'FILE_INVALID' });
  const start = entry.headerOffset + 30 + header.getUint16(26, true) + header.getUint16(28, true);
  if (start + entry.compressedSize > fileSize) throw new Img2PromptError(file, `truncated: zip entry "${entry.name}" ends past the end of the file`, { code: 'FILE_INVALID' });
  return start;
}

/** An entry's bytes, in a fresh buffer of their own (offset 0, so aligned for any typed array). */
export async function readZipEntry(fh: fs.FileHandle, entry: ZipEntry, fileSize: number, file: string): Promise<Buffer> {
  if (entry.method !== 0) {
    throw new Img2PromptError(file, `zip entry "${entry.name}" is compressed (method ${entry.method}); torch.save stores entries uncompressed, was the archive repacked?`, { code: 'FILE_INVALID' });
  }
  const start = await zipEntryDataOffset(fh, entry, fileSize, file);
  const out = Buffer.allocUnsafeSlow(entry.size);
  await readFully(fh, out, start, file);
  return out;
}

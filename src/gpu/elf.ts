import { closeSync, openSync, readSync, fstatSync } from 'node:fs';
import { Img2PromptError } from '../util/errors.js';

/**
 * What the dynamic loader reads from a shared library before it can load it: the libraries it needs
 * (DT_NEEDED, in order), where it asks them to be searched first (DT_RUNPATH, or the older DT_RPATH)
 * and its own name (DT_SONAME). Read straight from the ELF headers, so checking a 270 MB CUDA
 * provider touches a few kilobytes of it and needs neither readelf nor ldd (ldd would run the loader).
 */
export interface ElfDynamicInfo {
  /** ELF e_machine: 62 = x86-64, 183 = AArch64. */
  machine: number;
  needed: string[];
  runpath: string[];
  /** DT_RPATH entries; the loader ignores them when DT_RUNPATH is present. */
  rpath: string[];
  soname: string | undefined;
}

export const ELF_MACHINE = { x64: 62, arm64: 183 } as const;

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const DT_NULL = 0n;
const DT_NEEDED = 1n;
const DT_STRTAB = 5n;
const DT_STRSZ = 10n;
const DT_SONAME = 14n;
const DT_RPATH = 15n;
const DT_RUNPATH = 29n;

/** Positional reads from an open file, with the file named in every failure. */
class FileReader {
  readonly size: number;

  constructor(
    private readonly fd: number,
    private readonly file: string,
  ) {
    this.size = fstatSync(fd).size;
  }

  read(offset: number, length: number): Buffer {
    if (offset < 0 || length < 0 || offset + length > this.size) {
      throw new Img2PromptError(this.file, `not a valid ELF file: reading ${length} bytes at ${offset} runs past its ${this.size} bytes`, { code: 'FILE_INVALID' });
    }
    const buf = Buffer.alloc(length);
    let got = 0;
    while (got < length) {
      const n = readSync(this.fd, buf, got, length - got, offset + got);
      if (n === 0) throw new Img2PromptError(this.file, `unexpected end of file at ${offset + got}`, { code: 'FILE_INVALID' });
      got += n;
    }
    return buf;
  }
}

interface Segment {
  type: number;
  offset: number;
  vaddr: number;
  filesz: number;
}

/** Reads the dynamic section of a 64-bit little-endian ELF shared library (what Linux x64 and arm64 use). */
export function readElfDynamic(file: string): ElfDynamicInfo {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    throw new Img2PromptError(file, `cannot open: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { code: 'FILE_UNREADABLE', cause: err });
  }
  try {
    return parse(new FileReader(fd, file), file);
  } finally {
    closeSync(fd);
  }
}

function parse(r: FileReader, file: string): ElfDynamicInfo {
  if (r.size < 64 || r.read(0, 4).readUInt32BE(0) !== 0x7f454c46) throw new Img2PromptError(file, 'not an ELF file', { code: 'FILE_INVALID' });
  const ident = r.read(0, 64);
  if (ident[4] !== 2 || ident[5] !== 1) throw new Img2PromptError(file, 'not a 64-bit little-endian ELF file', { code: 'FILE_INVALID' });
  const machine = ident.readUInt16LE(18);
  const phoff = Number(ident.readBigUInt64LE(32));
  const phentsize = ident.readUInt16LE(54);
  const phnum = ident.readUInt16LE(56);

  const table = r.read(phoff, phentsize * phnum);
  const segments: Segment[] = [];
  for (let i = 0; i < phnum; i++) {
    const o = i * phentsize;
    segments.push({
      type: table.readUInt32LE(o),
      offset: Number(table.readBigUInt64LE(o + 8)),
      vaddr: Number(table.readBigUInt64LE(o + 16)),
      filesz: Number(table.readBigUInt64LE(o + 32)),
    });
  }
  const info: ElfDynamicInfo = { machine, needed: [], runpath: [], rpath: [], soname: undefined };
  const dynamic = segments.find((s) => s.type === PT_DYNAMIC);
  if (!dynamic) return info; // a static executable: needs nothing

  // DT_STRTAB is a virtual address; the PT_LOAD segment holding it says where it lies in the file.
  const toOffset = (vaddr: number): number => {
    const seg = segments.find((s) => s.type === PT_LOAD && vaddr >= s.vaddr && vaddr < s.vaddr + s.filesz);
    if (!seg) throw new Img2PromptError(file, `not a valid ELF file: address 0x${vaddr.toString(16)} is in no loaded segment`, { code: 'FILE_INVALID' });
    return seg.offset + (vaddr - seg.vaddr);
  };

  const entries = r.read(dynamic.offset, dynamic.filesz);
  const tagged: [bigint, bigint][] = [];
  let strtab = -1;
  let strsz = 0;
  for (let o = 0; o + 16 <= entries.length; o += 16) {
    const tag = entries.readBigInt64LE(o);
    const value = entries.readBigUInt64LE(o + 8);
    if (tag === DT_NULL) break;
    if (tag === DT_STRTAB) strtab = toOffset(Number(value));
    else if (tag === DT_STRSZ) strsz = Number(value);
    else tagged.push([tag, value]);
  }
  if (strtab < 0) throw new Img2PromptError(file, 'not a valid ELF file: dynamic section without a string table', { code: 'FILE_INVALID' });
  const strings = r.read(strtab, Math.min(strsz, r.size - strtab));
  const str = (offset: bigint): string => {
    const start = Number(offset);
    const end = strings.indexOf(0, start);
    if (start >= strings.length || end < 0) throw new Img2PromptError(file, `not a valid ELF file: string offset ${start} outside the string table`, { code: 'FILE_INVALID' });
    return strings.toString('utf8', start, end);
  };
  const paths = (value: bigint) => str(value).split(':').filter((p) => p !== '');
  for (const [tag, value] of tagged) {
    if (tag === DT_NEEDED) info.needed.push(str(value));
    else if (tag === DT_SONAME) info.soname = str(value);
    else if (tag === DT_RUNPATH) info.runpath.push(...paths(value));
    else if (tag === DT_RPATH) info.rpath.push(...paths(value));
  }
  return info;
}

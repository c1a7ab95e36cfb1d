import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Img2PromptError, errorMessage } from '../util/errors.js';
import { fileStamp, sameStamp, type FileStamp } from './file-stamp.js';
import { sha256File } from './sha256.js';

/**
 * Content hashes of the files the engine builds from others (ONNX graphs from safetensors weights)
 * and keeps in the model cache, and of the inputs they were built from.
 *
 * A built file is recorded with its sha256 and its FileStamp when it is written. Opening it trusts an
 * unchanged stamp (one stat, no read); a changed stamp means the bytes are hashed again, so a file
 * written to after its build is caught even when its mtime was put back (the ctime moves anyway).
 * `img2prompt models verify` hashes every built file whatever its stamp, which also catches damage
 * that bypassed the kernel. A built file whose hash no longer matches is derived data: it is rebuilt,
 * with a notice naming it and why.
 */

/** A file's sha256 together with the stamp it had when it was hashed. */
export interface StampedHash extends FileStamp {
  sha256: string;
}

/** A file written by a builder, relative to its model folder (`/` separators). */
export interface BuiltFile extends StampedHash {
  path: string;
}

/** How hard to look at files recorded earlier: trust an unchanged stamp ('stamp'), or always re-hash ('hash'). */
export type CheckDepth = 'stamp' | 'hash';

/**
 * sha256 and stamp of `file`. The hash recorded in `known` is reused without reading the file when
 * the stamp is unchanged and `depth` is 'stamp'. Throws naming the file when it cannot be read.
 */
export async function stampedHash(file: string, known?: Partial<StampedHash>, depth: CheckDepth = 'stamp'): Promise<StampedHash> {
  let stamp: FileStamp;
  try {
    stamp = fileStamp(await fs.stat(file));
  } catch (err) {
    throw new Img2PromptError(file, `cannot read: ${errorMessage(err)}`, { code: 'FILE_UNREADABLE', cause: err });
  }
  if (depth === 'stamp' && typeof known?.sha256 === 'string' && sameStamp(known, stamp)) return { ...stamp, sha256: known.sha256 };
  try {
    return { ...stamp, sha256: await sha256File(file) };
  } catch (err) {
    throw new Img2PromptError(file, `cannot read: ${errorMessage(err)}`, { code: 'FILE_UNREADABLE', cause: err });
  }
}

/** Records files a builder has just written in `dir` (hashing each once). */
export async function recordBuiltFiles(dir: string, rels: readonly string[]): Promise<BuiltFile[]> {
  const out: BuiltFile[] = [];
  for (const rel of rels) out.push({ path: rel, ...(await stampedHash(path.join(dir, ...rel.split('/')))) });
  return out;
}

export interface BuiltFilesProblem {
  /** The built file at fault (absolute), or the folder when no records were kept. */
  file: string;
  reason: string;
  /** True when a file changed after it was built (worth a notice); false for records an older version left without hashes. */
  damaged: boolean;
}

export interface BuiltFilesCheck {
  /** Why the files cannot be used as built (the first bad one); undefined when they all match. */
  problem?: BuiltFilesProblem;
  /** The records with stamps brought up to date (a file copied or touched but unchanged in content). */
  records: BuiltFile[];
  /** True when a record's stamp moved, so the caller should save `records`. */
  restamped: boolean;
}

const failed = (problem: BuiltFilesProblem): BuiltFilesCheck => ({ problem, records: [], restamped: false });

/**
 * Checks built files against their records: a missing, resized or (by sha256) changed file is a
 * problem. Records that are not well-formed (e.g. left by a version that kept no hashes) are one too,
 * so such files are rebuilt once rather than trusted.
 */
export async function checkBuiltFiles(dir: string, records: unknown, depth: CheckDepth): Promise<BuiltFilesCheck> {
  const unrecorded = failed({ file: dir, reason: 'no content hashes recorded for the built files', damaged: false });
  if (!Array.isArray(records) || records.length === 0) return unrecorded;
  const out: BuiltFile[] = [];
  let restamped = false;
  for (const r of records as Partial<BuiltFile>[]) {
    if (typeof r?.path !== 'string' || typeof r.sha256 !== 'string' || typeof r.size !== 'number') return unrecorded;
    const file = path.join(dir, ...r.path.split('/'));
    let stamp: FileStamp;
    try {
      stamp = fileStamp(await fs.stat(file));
    } catch {
      return failed({ file, reason: 'missing', damaged: false });
    }
    if (stamp.size !== r.size) return failed({ file, reason: `${stamp.size} bytes, ${r.size} when it was built`, damaged: true });
    const now = await stampedHash(file, r, depth);
    if (now.sha256 !== r.sha256) {
      return failed({ file, reason: `sha256 ${now.sha256}, not the ${r.sha256} recorded when it was built (changed or damaged since)`, damaged: true });
    }
    if (!sameStamp(r, now)) restamped = true;
    out.push({ path: r.path, ...now });
  }
  return { records: out, restamped };
}

/** The notice for a damaged built file that is being rebuilt. */
export function rebuildNotice(problem: BuiltFilesProblem, from: string): string {
  return `${problem.file}: ${problem.reason}; rebuilding it from ${from}`;
}

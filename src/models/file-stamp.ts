import type { Stats } from 'node:fs';

/**
 * What the file system says about a file's identity and last change. A stamp recorded next to a
 * hash lets a later open skip re-hashing a large file: any write, truncate, replace or copy through
 * the kernel changes at least one field (ctime cannot be set back by `touch`/utimes). Damage that
 * bypasses the kernel (bit rot on disk) needs the full hash, which `img2prompt models verify` does.
 */
export interface FileStamp {
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
}

export function fileStamp(stat: Stats): FileStamp {
  return { size: stat.size, mtimeMs: stat.mtimeMs, ctimeMs: stat.ctimeMs, ino: stat.ino };
}

/** True when `recorded` (e.g. read back from JSON, possibly missing or partial) equals `now`. */
export function sameStamp(recorded: Partial<FileStamp> | undefined, now: FileStamp): boolean {
  return (
    recorded !== undefined &&
    recorded !== null &&
    recorded.size === now.size &&
    recorded.mtimeMs === now.mtimeMs &&
    recorded.ctimeMs === now.ctimeMs &&
    recorded.ino === now.ino
  );
}

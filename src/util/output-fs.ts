import { promises as fs } from 'node:fs';

/** What a writer needs of an open output file (a subset of Node's FileHandle). */
export interface OutputHandle {
  write(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesWritten: number }>;
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  sync(): Promise<void>;
  datasync(): Promise<void>;
  stat(): Promise<{ size: number }>;
  truncate(length?: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * The one place output files are opened for writing: atomic writes, checkpoint appends and label-bank
 * builds all open through `outputFs.open`.
 *
 * Why a seam: a full disk or a failing device cannot be produced on demand on every machine, yet the
 * promise "nothing broken is ever published" is about exactly those faults. Tests replace `open` with
 * one whose handles fail the way the kernel does (a short write, then ENOSPC or EIO), in process or
 * through a `--import` preload of the CLI, so the promise is checked everywhere, not only where a small
 * tmpfs can be mounted.
 */
export const outputFs = {
  open(file: string, flags: string): Promise<OutputHandle> {
    return fs.open(file, flags);
  },
};

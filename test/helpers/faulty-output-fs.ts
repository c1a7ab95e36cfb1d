import { promises as fs } from 'node:fs';
import path from 'node:path';
import { outputFs, type OutputHandle } from '../../src/util/output-fs.js';

/**
 * Disk faults on demand, through the writers' seam (src/util/output-fs.ts), for the files whose name
 * matches. The handles fail the way the kernel does: ENOSPC first shows as a short write (the bytes that
 * still fit), then as the error on the next write; EIO can also surface only at fsync.
 */
export interface OutputFault {
  /** Faults apply to files whose base name matches this regular expression (the temp of `sub.csv` is `.sub.csv.<pid>.<random>.tmp`). */
  match: string;
  /**
   * 'ENOSPC' or 'EIO' once `after` bytes are in the file; 'EIO-at-sync' fails fsync; 'short-writes' writes
   * at most 7 bytes per call but never fails; 'lying-write' reports every write as done but keeps only the
   * first `after` bytes; 'hang' writes the first `after` bytes, then never returns (a process to kill);
   * 'interrupt' does the same and sends this process SIGINT.
   */
  kind: 'ENOSPC' | 'EIO' | 'EIO-at-sync' | 'short-writes' | 'lying-write' | 'hang' | 'interrupt';
  /** Bytes that fit (ENOSPC, EIO, lying-write); default 0. */
  after?: number;
}

function osError(code: 'ENOSPC' | 'EIO', syscall: string): NodeJS.ErrnoException {
  const text = code === 'ENOSPC' ? 'no space left on device' : 'i/o error';
  return Object.assign(new Error(`${code}: ${text}, ${syscall}`), { code, errno: code === 'ENOSPC' ? -28 : -5, syscall });
}

class FaultyHandle implements OutputHandle {
  constructor(
    private readonly real: OutputHandle,
    private readonly fault: OutputFault,
  ) {}

  async write(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesWritten: number }> {
    const { kind } = this.fault;
    const room = (this.fault.after ?? 0) - position;
    if (kind === 'hang' || kind === 'interrupt') {
      if (room > 0) await this.real.write(buffer, offset, Math.min(length, room), position);
      if (kind === 'interrupt') process.kill(process.pid, 'SIGINT');
      // A pending promise alone would let the process end; a timer keeps it waiting, as on a stuck device.
      return new Promise(() => setInterval(() => undefined, 60_000));
    }
    if (kind === 'short-writes') return this.real.write(buffer, offset, Math.min(length, 7), position);
    if (kind === 'lying-write') {
      if (room > 0) await this.real.write(buffer, offset, Math.min(length, room), position);
      return { bytesWritten: length };
    }
    if (kind === 'ENOSPC' || kind === 'EIO') {
      if (room <= 0) throw osError(kind, 'write');
      return this.real.write(buffer, offset, Math.min(length, room), position);
    }
    return this.real.write(buffer, offset, length, position);
  }

  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesRead: number }> {
    return this.real.read(buffer, offset, length, position);
  }

  async sync(): Promise<void> {
    if (this.fault.kind === 'EIO-at-sync') throw osError('EIO', 'fsync');
    return this.real.sync();
  }

  async datasync(): Promise<void> {
    if (this.fault.kind === 'EIO-at-sync') throw osError('EIO', 'fdatasync');
    return this.real.datasync();
  }

  stat(): Promise<{ size: number }> {
    return this.real.stat();
  }

  truncate(length?: number): Promise<void> {
    return this.real.truncate(length);
  }

  close(): Promise<void> {
    return this.real.close();
  }
}

/** Installs `fault` on the writers' seam; returns the function that puts the real file system back. */
export function injectOutputFault(fault: OutputFault): () => void {
  const original = outputFs.open;
  const match = new RegExp(fault.match);
  outputFs.open = async (file, flags) => {
    const handle = await original(file, flags);
    return match.test(path.basename(file)) ? new FaultyHandle(handle, fault) : handle;
  };
  return () => {
    outputFs.open = original;
  };
}

/** Sends every output open through /dev/full, the kernel's own always-full device (real ENOSPC from write(2)). */
export function writeToDevFull(): () => void {
  const original = outputFs.open;
  outputFs.open = () => fs.open('/dev/full', 'w');
  return () => {
    outputFs.open = original;
  };
}

/** Environment variable the CLI preload (faulty-output-fs-preload.ts) reads its fault from. */
export const FAULT_ENV = 'IMG2PROMPT_TEST_OUTPUT_FAULT';

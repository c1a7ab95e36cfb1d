import { promises as fs, rmSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Img2PromptError, osReason } from './errors.js';
import { outputFs, type OutputHandle } from './output-fs.js';
import { processAlive } from './process-liveness.js';

/**
 * The one way the product publishes a file: write a temp file in the target's folder (so the final
 * rename never crosses file systems), check every write (a short write is continued, an error is
 * fatal), fsync, check that the file holds every byte written, rename onto the target, fsync the
 * folder. Readers see the old file or the whole new one, never a part; on any failure the temp is
 * removed and the error names the target and the OS's reason ("no space left on device").
 */

const TEMP_SUFFIX = '.tmp';

/** Temps of this process not yet renamed or removed: an interrupt handler removes them on its way out. */
const liveTemps = new Set<string>();

/** `.<name>.<pid>.<random>.tmp` next to the target: hidden, and it names the process that writes it. */
export function tempPathFor(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}${TEMP_SUFFIX}`);
}

/** The pid in a temp name of `target`'s, or undefined if `name` is not one. */
function tempOwner(target: string, name: string): number | undefined {
  const prefix = `.${path.basename(target)}.`;
  if (!name.startsWith(prefix) || !name.endsWith(TEMP_SUFFIX)) return undefined;
  const m = /^(\d+)\.[0-9a-f]{8}$/.exec(name.slice(prefix.length, -TEMP_SUFFIX.length));
  return m ? Number(m[1]) : undefined;
}

/**
 * Removes the temps of `target` left by runs that were killed before they could clean up (SIGKILL, a
 * power cut). Temps of live processes are in use and stay. Returns the paths removed.
 */
export async function removeStaleTemps(target: string): Promise<string[]> {
  const dir = path.dirname(target);
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const pid = tempOwner(target, name);
    if (pid === undefined) continue;
    const file = path.join(dir, name);
    const inUse = pid === process.pid ? liveTemps.has(file) : processAlive(pid);
    if (inUse) continue;
    await fs.rm(file, { force: true });
    removed.push(file);
  }
  return removed;
}

/** Removes this process's unfinished temps; for an interrupt handler, which cannot wait for promises. */
export function removeLiveTempsSync(): void {
  for (const file of liveTemps) rmSync(file, { force: true });
  liveTemps.clear();
}

/** The error every failed output write becomes: the target (never the temp) and the OS's reason. */
export function outputError(target: string, err: unknown): Img2PromptError {
  if (err instanceof Img2PromptError) return err;
  return new Img2PromptError(target, `cannot write: ${osReason(err)}`, { code: 'OUTPUT_FAILED', cause: err });
}

/**
 * Writes all of `data` at `position`. write(2) may write less than asked (a disk filling up does this
 * before it reports ENOSPC): the rest is written by the next call, whose error then surfaces.
 */
export async function writeFully(handle: OutputHandle, data: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    // One write() is capped at 2 GiB; 1 GiB pieces stay well under it.
    const { bytesWritten } = await handle.write(data, done, Math.min(data.length - done, 1 << 30), position + done);
    if (bytesWritten <= 0) throw Object.assign(new Error('EIO: i/o error, write returned 0 bytes'), { code: 'EIO' });
    done += bytesWritten;
  }
}

/** fsync of a folder, so a rename into it survives a power cut. Skipped where the platform refuses it. */
export async function syncDirectory(dir: string): Promise<void> {
  let handle: fs.FileHandle | undefined;
  try {
    handle = await fs.open(dir, 'r');
    await handle.sync();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // Some platforms and file systems cannot fsync a directory; the file itself was synced already.
    if (code !== 'EINVAL' && code !== 'ENOTSUP' && code !== 'EISDIR' && code !== 'EPERM' && code !== 'EBADF') throw err;
  } finally {
    await handle?.close();
  }
}

/** Renames a finished, synced file onto `target` and makes the rename durable. */
export async function publishFile(from: string, target: string): Promise<void> {
  await fs.rename(from, target);
  await syncDirectory(path.dirname(target));
}

/** A file being written for `target`: bytes go to a temp next to it until `commit()` publishes them. */
export class AtomicFile {
  /** Bytes the file must hold: the end of the furthest write. */
  private end = 0;
  private done = false;

  private constructor(
    readonly target: string,
    /** The temp file; readable (e.g. to validate it) before `commit()`. */
    readonly tempPath: string,
    private readonly handle: OutputHandle,
  ) {}

  static async create(target: string): Promise<AtomicFile> {
    await removeStaleTemps(target);
    const tmp = tempPathFor(target);
    try {
      const handle = await outputFs.open(tmp, 'wx');
      liveTemps.add(tmp);
      return new AtomicFile(target, tmp, handle);
    } catch (err) {
      throw outputError(target, err);
    }
  }

  /** Bytes written so far (the end of the furthest write). */
  get size(): number {
    return this.end;
  }

  /** Writes `data` at `position` (default: after everything written so far). */
  async write(data: string | Uint8Array, position = this.end): Promise<void> {
    if (this.done) throw new Img2PromptError(this.target, 'cannot write: the file is already closed', { code: 'OUTPUT_FAILED' });
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    try {
      await writeFully(this.handle, bytes, position);
    } catch (err) {
      throw outputError(this.target, err);
    }
    this.end = Math.max(this.end, position + bytes.length);
  }

  /** fsync, check the size, rename onto the target, fsync the folder. On failure the temp is removed. */
  async commit(): Promise<void> {
    if (this.done) throw new Img2PromptError(this.target, 'cannot write: the file is already closed', { code: 'OUTPUT_FAILED' });
    this.done = true;
    try {
      try {
        await this.handle.sync();
        const { size } = await this.handle.stat();
        if (size !== this.end) throw new Img2PromptError(this.target, `cannot write: the file holds ${size} bytes after ${this.end} were written`, { code: 'OUTPUT_FAILED' });
      } finally {
        await this.handle.close();
      }
      await publishFile(this.tempPath, this.target);
      liveTemps.delete(this.tempPath);
    } catch (err) {
      await this.removeTemp();
      throw outputError(this.target, err);
    }
  }

  /** Drops the temp; the target is untouched. Safe to call after `commit()` (then it does nothing). */
  async abort(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await this.handle.close().catch(() => undefined);
    await this.removeTemp();
  }

  private async removeTemp(): Promise<void> {
    await fs.rm(this.tempPath, { force: true });
    liveTemps.delete(this.tempPath);
  }
}

/**
 * Writes `target` through an AtomicFile: `produce` writes into it; when `produce` returns, the file is
 * committed; if it throws, nothing is published and the temp is removed.
 */
export async function writeAtomically<T>(target: string, produce: (out: AtomicFile) => Promise<T>): Promise<T> {
  const out = await AtomicFile.create(target);
  let result: T;
  try {
    result = await produce(out);
  } catch (err) {
    await out.abort();
    throw outputError(target, err);
  }
  await out.commit();
  return result;
}

/** Atomic write of a whole buffer or string. */
export async function writeFileAtomic(target: string, data: string | Uint8Array): Promise<void> {
  await writeAtomically(target, (out) => out.write(data));
}

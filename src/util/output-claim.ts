import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Img2PromptError, osReason } from './errors.js';
import { removeStaleTemps, tempPathFor } from './atomic-write.js';
import { acquireLock, describeHolder } from './file-lock.js';

export interface ClaimOptions {
  /** Create a missing output folder (with its parents) instead of refusing it. */
  createFolders?: boolean;
}

/** The outputs a run has claimed; `release()` drops their locks (idempotent). */
export interface ClaimedOutputs {
  readonly files: readonly string[];
  release(): Promise<void>;
}

/** `<output>.lock`: held while a run writes `<output>`. */
export function lockFileFor(output: string): string {
  return `${output}.lock`;
}

/**
 * The folder takes a new file: proven by creating one, since permission bits say nothing for root,
 * ACLs or a read-only mount.
 */
async function checkFolderWritable(target: string, dir: string): Promise<void> {
  const probe = tempPathFor(target);
  try {
    await (await fs.open(probe, 'wx')).close();
  } catch (err) {
    throw new Img2PromptError(target, `output folder ${dir} is not writable (${osReason(err)})`, { code: 'OUTPUT_FAILED', cause: err });
  }
  await fs.rm(probe, { force: true });
}

/** Throws, naming `target`, unless a run can publish a file there. */
async function checkOutputTarget(target: string, options: ClaimOptions): Promise<void> {
  const dir = path.dirname(path.resolve(target));
  const targetStat = await fs.stat(target).catch(() => undefined);
  if (targetStat?.isDirectory()) throw new Img2PromptError(target, 'output is a directory, expected a file name');
  const dirStat = await fs.stat(dir).catch(() => undefined);
  if (!dirStat && options.createFolders) {
    try {
      await fs.mkdir(dir, { recursive: true });
    } catch (err) {
      throw new Img2PromptError(target, `cannot create output folder ${dir} (${osReason(err)})`, { code: 'OUTPUT_FAILED', cause: err });
    }
  } else if (!dirStat) {
    throw new Img2PromptError(target, `output folder ${dir} does not exist`, { code: 'OUTPUT_FAILED' });
  } else if (!dirStat.isDirectory()) {
    throw new Img2PromptError(target, `output folder ${dir} is not a folder`, { code: 'OUTPUT_FAILED' });
  }
  await checkFolderWritable(target, dir);
}

/**
 * Everything a run must know about its outputs before it does any work: each can be written (its folder
 * exists, or is created with `createFolders`, and takes a new file; the target is not a folder), no two
 * options name the same file, temps that killed runs left for them are removed, and each is locked
 * (`<output>.lock`, holding pid and start time) so that a second run writing the same file is refused,
 * naming the first, instead of both reporting success while one silently replaces the other.
 */
export async function claimOutputs(files: readonly string[], options: ClaimOptions = {}): Promise<ClaimedOutputs> {
  const seen = new Map<string, string>();
  for (const file of files) {
    const first = seen.get(path.resolve(file));
    if (first !== undefined) throw new Img2PromptError(file, `named for two outputs of this run (also ${first})`);
    seen.set(path.resolve(file), file);
  }
  for (const file of files) await checkOutputTarget(file, options);
  const releases: (() => Promise<void>)[] = [];
  const release = async () => {
    for (const r of releases.splice(0)) await r();
  };
  try {
    for (const file of files) {
      releases.push(
        await acquireLock(lockFileFor(file), (holder) => new Img2PromptError(file, `another run is writing this file (${describeHolder(holder)}); wait for it to finish or choose another output`, { code: 'OUTPUT_FAILED' })),
      );
      await removeStaleTemps(file);
    }
  } catch (err) {
    await release();
    throw err;
  }
  return { files: [...files], release };
}

/** Runs `work` with `files` claimed (see claimOutputs); the locks are dropped however it ends. */
export async function withClaimedOutputs<T>(files: readonly string[], options: ClaimOptions, work: () => Promise<T>): Promise<T> {
  const claim = await claimOutputs(files, options);
  try {
    return await work();
  } finally {
    await claim.release();
  }
}

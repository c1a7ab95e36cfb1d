import { promises as fs, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { Img2PromptError, osReason } from './errors.js';
import { processAlive, processStartTime } from './process-liveness.js';

/** Who holds a lock: the pid and when it took the lock (absent in locks written by older versions). */
export interface LockHolder {
  pid: number;
  since?: Date;
}

/** Locks this process holds, so a SIGINT handler can drop them synchronously on its way out. */
const held = new Set<string>();

/**
 * A process's start time is read at second resolution (/proc/stat's boot time), so a holder may seem
 * to have started up to a second after it took its lock.
 */
const START_TIME_SLACK_MS = 1500;

function parseHolder(text: string): LockHolder | undefined {
  const [pidLine, sinceLine] = text.split('\n');
  const pid = Number(pidLine);
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  const since = sinceLine ? new Date(sinceLine) : undefined;
  return { pid, since: since && !Number.isNaN(since.getTime()) ? since : undefined };
}

/**
 * Whether the holder is still at work. A dead pid is stale; so is a live pid that started after the
 * lock was taken (the holder died and its pid was given to another process); our own pid holds it only
 * if this process took it.
 */
function holderActive(lockFile: string, holder: LockHolder): boolean {
  if (holder.pid === process.pid) return held.has(lockFile);
  if (!processAlive(holder.pid)) return false;
  const started = processStartTime(holder.pid);
  if (holder.since && started !== undefined && started > holder.since.getTime() + START_TIME_SLACK_MS) return false;
  return true;
}

/**
 * Takes `lockFile` for this process, or throws the error `busy(holder)` makes while another live
 * process holds it. A
 * lock left by a dead process is taken over. The file appears with its content in one step (written
 * aside, then hard-linked into place), so no other process can ever read a half-written lock and judge
 * it stale. Returns the release function.
 */
export async function acquireLock(lockFile: string, busy: (holder: LockHolder) => Error): Promise<() => Promise<void>> {
  const content = `${process.pid}\n${new Date().toISOString()}\n`;
  const aside = `${lockFile}.${process.pid}.${randomBytes(4).toString('hex')}.new`;
  try {
    await fs.writeFile(aside, content, { flag: 'wx' });
  } catch (err) {
    throw new Img2PromptError(lockFile, `cannot create lock file: ${osReason(err)}`, { code: 'OUTPUT_FAILED', cause: err });
  }
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await fs.link(aside, lockFile);
        held.add(lockFile);
        return async () => {
          held.delete(lockFile);
          await fs.rm(lockFile, { force: true });
        };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw new Img2PromptError(lockFile, `cannot create lock file: ${osReason(err)}`, { code: 'OUTPUT_FAILED', cause: err });
        }
      }
      const text = await fs.readFile(lockFile, 'utf8').catch(() => '');
      const holder = parseHolder(text);
      if (holder && holderActive(lockFile, holder)) throw busy(holder);
      // Stale: removed only if it is still the lock judged stale, not one a third process just took.
      if ((await fs.readFile(lockFile, 'utf8').catch(() => '')) === text) await fs.rm(lockFile, { force: true });
    }
    throw new Img2PromptError(lockFile, 'cannot take the lock (it keeps reappearing)', { code: 'OUTPUT_FAILED' });
  } finally {
    await fs.rm(aside, { force: true });
  }
}

/** Drops every lock this process holds; for an interrupt handler, which cannot wait for promises. */
export function releaseHeldLocksSync(): void {
  for (const lockFile of held) rmSync(lockFile, { force: true });
  held.clear();
}

/** "pid 1234, since 2025-06-01 12:00:00 UTC" */
export function describeHolder(holder: LockHolder): string {
  const since = holder.since ? `, since ${holder.since.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC')}` : '';
  return `pid ${holder.pid}${since}`;
}

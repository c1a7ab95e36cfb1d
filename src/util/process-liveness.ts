import { readFileSync } from 'node:fs';

/** True while a process with this pid exists (EPERM: it exists but belongs to someone else). */
export function processAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Clock ticks per second of /proc/<pid>/stat's start time: USER_HZ, 100 on every Linux ABI Node runs on. */
const USER_HZ = 100;

/**
 * When the process `pid` started (ms since the epoch), from /proc; undefined where there is no /proc
 * or the process is gone. Lets a lock tell its holder from an unrelated process that was later given
 * the same pid (common in containers, where every run starts with the same few pids).
 */
export function processStartTime(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 2 (the command name) may hold spaces and parentheses: count fields from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[19]); // field 22 overall
    const btime = /^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'));
    if (!btime || !Number.isFinite(ticks)) return undefined;
    return Number(btime[1]) * 1000 + (ticks / USER_HZ) * 1000;
  } catch {
    return undefined;
  }
}

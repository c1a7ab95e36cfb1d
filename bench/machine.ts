import os from 'node:os';
import fs from 'node:fs';
import { ortVersion } from '../src/runtime/session.js';

/** One line describing where a benchmark ran, for bench/RESULTS.md. */
export function describeMachine(): string {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  let flags = '';
  try {
    const info = fs.readFileSync('/proc/cpuinfo', 'utf8');
    const f = /^flags\s*:\s*(.*)$/m.exec(info)?.[1]?.split(' ') ?? [];
    flags = ['avx2', 'fma', 'f16c', 'avx512f'].filter((x) => f.includes(x)).join(',');
  } catch {
    /* not Linux */
  }
  const mem = (os.totalmem() / 2 ** 30).toFixed(0);
  return `${cpu} (${os.cpus().length} logical cores, ${flags}), ${mem} GiB, Node ${process.version}, ORT ${ortVersion()}`;
}

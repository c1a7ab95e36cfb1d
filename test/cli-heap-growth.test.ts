// The CLI caps how far V8's old generation grows between full GCs (src/cli/heap-growth.ts), so a long
// run's peak memory stays near its steady state instead of depending on where the last full GC fell
// (interrogate over 1M inputs: 305 MiB peak against 192 MiB steady without it). Each case runs the
// promotion workload in a process of its own: the setting is process-wide.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { HEAP_GROWING_PERCENT } from '../src/cli/heap-growth.js';

const WORKLOAD = path.resolve('test/fixtures/heap-growth/promotion-workload.mts');

function workload(env: Record<string, string>, nodeFlags: string[] = []): { applied: number | null; peakMiB: number } {
  const child = spawnSync(process.execPath, [...nodeFlags, '--import', 'tsx', WORKLOAD], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 120_000 });
  expect(child.status, child.stderr).toBe(0);
  return JSON.parse(child.stdout.trim()) as { applied: number | null; peakMiB: number };
}

describe('heap growth between full GCs', () => {
  const limited = () => workload({ LIMIT: '1' });

  it('keeps the peak heap of a promoting workload well below what V8 allows by default', () => {
    const byDefault = workload({ LIMIT: '0' });
    const capped = limited();
    expect(capped.applied).toBe(HEAP_GROWING_PERCENT);
    // Live set ~16 MB: V8's default let the heap reach ~100 MB here, the capped growth ~53 MB.
    expect(capped.peakMiB).toBeLessThan(0.7 * byDefault.peakMiB);
  });

  it('leaves a value the user gave node alone', () => {
    const capped = limited();
    for (const flag of ['--heap-growing-percent=300', '--heap_growing_percent=300']) {
      const users = workload({ LIMIT: '1' }, [flag]);
      expect(users.applied).toBeNull();
      expect(users.peakMiB).toBeGreaterThan(1.3 * capped.peakMiB);
    }
  });
});

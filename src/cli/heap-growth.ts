/**
 * How far the CLI lets V8's old generation grow between full collections. After each full GC, V8 lets
 * the old generation grow to up to 4× what survived before it collects again. A run's live heap is
 * small and flat, but whatever outlives two scavenges (a batch in flight, its rows waiting for the
 * writer) is promoted, about 1 MB a second in `interrogate`, and then waits for that limit. So peak
 * memory depended on when the last full GC before the run fell: `interrogate` over a million inputs
 * peaked at 305 MiB against 192 MiB steady, because a full GC while the models loaded had found 37 MB
 * alive and set the limit near 145 MB. Growing by 30 % instead keeps the peak near the steady state;
 * the full collections it adds take milliseconds on a heap of tens of megabytes.
 *
 * Process-wide, so only the CLI sets it (a library caller keeps its own), and not when the user gave
 * their own value (`node --heap-growing-percent=N`).
 */
import v8 from 'node:v8';

export const HEAP_GROWING_PERCENT = 30;

/** Sets V8's heap growing percent unless `execArgv` (node's own flags) sets it; returns the value in effect, or undefined when the user's is. */
export function limitHeapGrowth(execArgv: readonly string[]): number | undefined {
  if (execArgv.some((a) => /^--heap[-_]growing[-_]percent(=|$)/.test(a))) return undefined;
  v8.setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
  return HEAP_GROWING_PERCENT;
}

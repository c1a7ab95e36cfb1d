// This machine's streaming-read rate: the native probe (native/stream_read.cc) sums a buffer much larger
// than the last-level cache on N threads with AVX2 loads. Top-k at small B must read the whole bank once,
// so this is its floor (bench/topk.bench.ts prints it next to the kernel's GB/s).
import { native } from '../src/native/addon.js';

export interface ReadRate {
  bytes: number;
  threads: number;
  passes: number;
  kernel: string;
  /** GB/s of the fastest pass (other load only ever slows a pass down) and of the median one. */
  bestGBs: number;
  medianGBs: number;
}

export async function measureReadRate(options: { mib?: number; threads?: number; passes?: number } = {}): Promise<ReadRate> {
  const mib = options.mib ?? 512;
  const threads = options.threads ?? 2;
  const passes = options.passes ?? 10;
  // Filled, not left zero: untouched pages all map to one shared zero page, which reads from cache.
  const data = new Float32Array((mib * 2 ** 20) / 4).fill(1);
  await native().streamRead(data, { threads, passes: 1 }); // warm-up: page tables, frequency
  const { sum, seconds, kernel } = await native().streamRead(data, { threads, passes });
  if (sum !== data.length) throw new Error(`streamRead summed ${sum}, expected ${data.length}: the probe skipped data`);
  const sorted = [...seconds].sort((a, b) => a - b);
  const gbs = (s: number) => data.byteLength / s / 1e9;
  return { bytes: data.byteLength, threads, passes, kernel, bestGBs: gbs(sorted[0]!), medianGBs: gbs(sorted[Math.floor(sorted.length / 2)]!) };
}

// Run on its own: node --import tsx bench/bandwidth.ts [MiB] [threads]
if (import.meta.url === `file://${process.argv[1]}`) {
  const r = await measureReadRate({ mib: Number(process.argv[2] ?? 512), threads: Number(process.argv[3] ?? 2) });
  console.log(`streaming read ${r.bytes / 2 ** 20} MiB, ${r.threads} threads (${r.kernel}): best ${r.bestGBs.toFixed(1)} GB/s, median ${r.medianGBs.toFixed(1)} GB/s over ${r.passes} passes`);
}

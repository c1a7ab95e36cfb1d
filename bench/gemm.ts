// This machine's fp32 matrix-multiply rate through our own Session: the yardstick for "how far from the
// hardware is this model?" floors in the benches. One MatMul node, both operands fed as inputs (nothing
// constant-folded away), the same intra-op thread count the benches give the models.
import { Bench } from 'tinybench';
import { GraphBuilder } from '../models/graph/onnx-builder.js';
import { Session, tensor } from '../src/runtime/session.js';

export interface GemmRate {
  m: number;
  k: number;
  n: number;
  threads: number;
  /** Median milliseconds per MatMul (a shared machine's load only ever slows runs down). */
  ms: number;
  gflops: number;
}

/** [m, k] × [k, n] as an ONNX graph (opset 17). */
export function matMulGraph(m: number, k: number, n: number): Uint8Array {
  const g = new GraphBuilder('gemm');
  const a = g.input('a', 'float32', [m, k]);
  const b = g.input('b', 'float32', [k, n]);
  g.output(g.op('MatMul', [a, b]), 'c', 'float32', [m, n]);
  return g.toBytes();
}

/** Deterministic values in [-1, 1): the rate must not depend on what is multiplied, but denormals would skew it. */
function filled(length: number, seed: number): Float32Array {
  const out = new Float32Array(length);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

/**
 * Measures GFLOP/s (2·m·k·n per MatMul) of a square-ish fp32 GEMM on the CPU provider, for about `timeMs`
 * after a warm-up run. The output goes into a caller-owned buffer, so allocation is not timed.
 */
export async function measureGemmRate(options: { size?: number; threads?: number; timeMs?: number } = {}): Promise<GemmRate> {
  const size = options.size ?? 1024;
  const threads = options.threads ?? 2;
  const [m, k, n] = [size, size, size];
  const session = await Session.open(matMulGraph(m, k, n), { providers: ['cpu'], intraOpThreads: threads });
  try {
    const a = tensor('float32', filled(m * k, 1), [m, k]);
    const b = tensor('float32', filled(k * n, 2), [k, n]);
    const c = { data: new Float32Array(m * n), dims: [m, n] };
    const run = () => session.run({ a, b }, { into: { c } });
    await run();
    const bench = new Bench({ time: options.timeMs ?? 2000, iterations: 3, warmup: false });
    // async: true, or tinybench calls `run` once to see if it returns a promise and leaves that call
    // running, un-awaited, on top of the first timed one.
    bench.add('gemm', run, { async: true });
    await bench.run();
    const ms = medianMs(bench.tasks[0]!);
    return { m, k, n, threads, ms, gflops: (2 * m * k * n) / (ms * 1e6) };
  } finally {
    session.close();
  }
}

function medianMs(task: Bench['tasks'][number]): number {
  const r = task.result as { latency?: { p50: number }; error?: unknown };
  if (!r.latency) throw new Error(`bench task ${task.name} failed: ${String(r.error)}`);
  return r.latency.p50;
}

// Run on its own: node --import tsx bench/gemm.ts [size] [threads]
if (import.meta.url === `file://${process.argv[1]}`) {
  const r = await measureGemmRate({ size: Number(process.argv[2] ?? 1024), threads: Number(process.argv[3] ?? 2) });
  console.log(`fp32 MatMul ${r.m}×${r.k}×${r.n}, ${r.threads} threads: ${r.ms.toFixed(2)} ms, ${r.gflops.toFixed(1)} GFLOP/s`);
}

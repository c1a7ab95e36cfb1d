// Label-bank top-k: the native fused kernel against the plain TypeScript loop and onnxruntime-node
// (Gemm/MatMul + TopK on CPU, same thread count), on a random unit-vector bank the size of the
// flavor bank, next to this machine's floors measured in the same run (streaming-read GB/s from
// bench/bandwidth.ts, fp32 GEMM GFLOP/s from bench/gemm.ts, before and after the kernels). Prints a
// markdown table for bench/RESULTS.md.
//   node --import tsx bench/topk.bench.ts [--quick]
// --quick (or BENCH_QUICK=1): a small smoke run (N=20,000, D=512, B=1,8, short timings, small floors)
// that checks the bench runs and prints sane numbers; not for RESULTS.md.
// Env: BENCH_N (100970), BENCH_DIMS (512,768), BENCH_BATCHES (1,8,64), BENCH_K (10), BENCH_THREADS (2),
//      BENCH_TS=0 skips the (slow) TypeScript loop, BENCH_STREAM_MIB (512) sizes the read probe.
import { Bench, type Task } from 'tinybench';
import * as ort from 'onnxruntime-node';
import { GraphBuilder, attr } from '../models/graph/onnx-builder.js';
import { topk, topkKernel, type Matrix } from '../src/rank/topk.js';
import { topkReference } from '../src/rank/topk-reference.js';
import { toFloat16 } from '../src/rank/float16.js';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { describeMachine } from './machine.js';
import { measureGemmRate, type GemmRate } from './gemm.js';
import { measureReadRate, type ReadRate } from './bandwidth.js';

const { values: args } = parseArgs({ options: { quick: { type: 'boolean', default: false } } });
const QUICK = args.quick || process.env.BENCH_QUICK === '1';
const N = Number(process.env.BENCH_N ?? (QUICK ? 20_000 : 100_970));
const DIMS = (process.env.BENCH_DIMS ?? (QUICK ? '512' : '512,768')).split(',').map(Number);
const BATCHES = (process.env.BENCH_BATCHES ?? (QUICK ? '1,8' : '1,8,64')).split(',').map(Number);
const K = Number(process.env.BENCH_K ?? 10);
const THREADS = Number(process.env.BENCH_THREADS ?? 2);
const WITH_TS = process.env.BENCH_TS !== '0';
const STREAM_MIB = Number(process.env.BENCH_STREAM_MIB ?? (QUICK ? 64 : 512));
const TASK_MS = QUICK ? 300 : 1500;

/** The machine's floors, measured with the same thread count as the kernels. */
async function measureFloors(): Promise<{ read: ReadRate; gemm: GemmRate }> {
  const read = await measureReadRate({ mib: STREAM_MIB, threads: THREADS, passes: QUICK ? 5 : 10 });
  const gemm = await measureGemmRate({ size: 1024, threads: THREADS, timeMs: QUICK ? 300 : 2000 });
  return { read, gemm };
}

/** Seeded unit-length Gaussian rows (xorshift + Box-Muller): the same bank every run. */
function unitRows(rows: number, dim: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const next = (): number => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return ((s >>> 0) + 0.5) / 4294967296;
  };
  const data = new Float32Array(rows * dim);
  for (let i = 0; i < data.length; i++) data[i] = Math.sqrt(-2 * Math.log(next())) * Math.cos(2 * Math.PI * next());
  for (let r = 0; r < rows; r++) {
    let norm = 0;
    for (let d = 0; d < dim; d++) norm += data[r * dim + d] ** 2;
    norm = Math.sqrt(norm);
    for (let d = 0; d < dim; d++) data[r * dim + d] /= norm;
  }
  return data;
}

/** scores = queries · bankᵀ then TopK; `layout` 'rows' feeds the bank as is ([N, D], Gemm transB), 'columns' pre-transposed ([D, N], MatMul). */
function topkGraph(dim: number, half: boolean, layout: 'rows' | 'columns'): Uint8Array {
  const g = new GraphBuilder('bank_topk');
  const q = g.input('queries', 'float32', ['batch', dim]);
  let bank = g.input('bank', half ? 'float16' : 'float32', layout === 'rows' ? ['rows', dim] : [dim, 'rows']);
  if (half) bank = g.op('Cast', [bank], { to: attr.int(1) }, 'to_float');
  const scores = layout === 'rows' ? g.op('Gemm', [q, bank], { transB: 1 }) : g.op('MatMul', [q, bank]);
  const [values, indices] = g.node('TopK', [scores, g.constInt64([K])], { axis: -1, largest: 1, sorted: 1 }, { outputs: 2 });
  g.output(values, 'scores', 'float32');
  g.output(indices, 'indices', 'int64');
  return g.toBytes();
}

function transpose(m: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(m.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = m[r * cols + c];
  return t;
}

const ortOptions: ort.InferenceSession.SessionOptions = {
  executionProviders: ['cpu'],
  intraOpNumThreads: THREADS,
  interOpNumThreads: 1,
  executionMode: 'sequential',
  graphOptimizationLevel: 'all',
};

interface Row {
  dim: number;
  type: 'fp32' | 'fp16';
  batch: number;
  bankBytes: number;
  tasks: Record<string, Task>;
}
const rows: Row[] = [];
// Other work on the machine skews timings; the load averages go with the table.
const loadAtStart = os.loadavg()[0];
const floorsAtStart = await measureFloors();

for (const dim of DIMS) {
  // Per dimension, so only one bank size is in memory at a time.
  const fast = new Bench({ time: TASK_MS, warmup: true, warmupTime: 200, iterations: 5 });
  const slow = new Bench({ time: 0, warmup: false, iterations: 2 });
  const bank32 = unitRows(N, dim, 1000 + dim);
  const bank16 = toFloat16(bank32);
  const bankT = transpose(bank32, N, dim);
  const sessions = {
    gemm32: await ort.InferenceSession.create(topkGraph(dim, false, 'rows'), ortOptions),
    gemm16: await ort.InferenceSession.create(topkGraph(dim, true, 'rows'), ortOptions),
    matmul32: await ort.InferenceSession.create(topkGraph(dim, false, 'columns'), ortOptions),
  };
  for (const batch of BATCHES) {
    const queries: Matrix = { data: unitRows(batch, dim, batch * 7 + dim), dims: [batch, dim] };
    const q = new ort.Tensor('float32', queries.data as Float32Array, [batch, dim]);
    for (const type of ['fp32', 'fp16'] as const) {
      const bank: Matrix = { data: type === 'fp32' ? bank32 : bank16, dims: [N, dim] };
      const label = `D=${dim} ${type} B=${batch}`;
      const row: Row = { dim, type, batch, bankBytes: bank.data.byteLength, tasks: {} };
      fast.add(`${label} native`, async () => {
        await topk(queries, bank, K, { threads: THREADS });
      });
      if (type === 'fp32') {
        fast.add(`${label} ort-gemm`, async () => {
          await sessions.gemm32.run({ queries: q, bank: new ort.Tensor('float32', bank32, [N, dim]) });
        });
        fast.add(`${label} ort-matmul`, async () => {
          await sessions.matmul32.run({ queries: q, bank: new ort.Tensor('float32', bankT, [dim, N]) });
        });
      } else {
        fast.add(`${label} ort-gemm`, async () => {
          await sessions.gemm16.run({ queries: q, bank: new ort.Tensor('float16', bank16, [N, dim]) });
        });
      }
      if (WITH_TS) slow.add(`${label} ts`, () => void topkReference(queries, bank, K));
      rows.push(row);
    }
  }
  await fast.run();
  if (WITH_TS) await slow.run();
  for (const row of rows.filter((r) => r.dim === dim)) {
    const prefix = `D=${dim} ${row.type} B=${row.batch} `;
    for (const t of [...fast.tasks, ...slow.tasks]) if (t.name.startsWith(prefix)) row.tasks[t.name.slice(prefix.length)] = t;
  }
  for (const s of Object.values(sessions)) await s.release();
}

const ms = (t: Task | undefined, stat: 'p50' | 'min' = 'p50'): number | undefined => {
  const latency = (t?.result as { latency?: { p50?: number; min?: number } } | undefined)?.latency;
  return latency?.[stat];
};
const fmt = (x: number | undefined, digits = 1): string => (x === undefined ? '–' : x.toFixed(digits));
const pct = (x: number | undefined, floor: number): string => (x === undefined ? '–' : `${((100 * x) / floor).toFixed(0)} %`);

const floorsAtEnd = await measureFloors();
// The floors the table is read against: the better of the two measurements (load only lowers a rate).
const readFloor = Math.max(floorsAtStart.read.bestGBs, floorsAtEnd.read.bestGBs);
const gemmFloor = Math.max(floorsAtStart.gemm.gflops, floorsAtEnd.gemm.gflops);
const describeRead = (r: ReadRate) => `${r.bestGBs.toFixed(1)} (median ${r.medianGBs.toFixed(1)})`;
const g = floorsAtStart.gemm;

console.log(`machine: ${describeMachine()}; kernel ${topkKernel()}; threads ${THREADS}; N=${N}, k=${K}; median (min) ms${QUICK ? '; QUICK run, not for RESULTS.md' : ''}`);
console.log(`1-min load average: ${loadAtStart.toFixed(2)} at start, ${os.loadavg()[0].toFixed(2)} at end`);
console.log(
  `floors measured in this run, start / end: streaming read (${floorsAtStart.read.kernel}, ${STREAM_MIB} MiB, ${THREADS} threads, best of ` +
    `${floorsAtStart.read.passes} passes) ${describeRead(floorsAtStart.read)} / ${describeRead(floorsAtEnd.read)} GB/s; ` +
    `fp32 GEMM (${g.m}×${g.k}×${g.n} MatMul, ${THREADS} threads) ${floorsAtStart.gemm.gflops.toFixed(1)} / ${floorsAtEnd.gemm.gflops.toFixed(1)} GFLOP/s`,
);
console.log(`% floor = native GB/s / ${readFloor.toFixed(1)} GB/s; % GEMM = native GFLOP/s / ${gemmFloor.toFixed(1)} GFLOP/s`);
console.log('| D | bank | B | native ms | GB/s | % floor | GFLOP/s | % GEMM | TS loop ms | ORT Gemm ms | ORT MatMul (bankᵀ) ms | vs TS | vs best ORT |');
console.log('|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const r of rows) {
  const native = ms(r.tasks.native);
  const nativeMin = ms(r.tasks.native, 'min');
  const ts = ms(r.tasks.ts);
  const gemm = ms(r.tasks['ort-gemm']);
  const matmul = ms(r.tasks['ort-matmul']);
  const bestOrt = Math.min(gemm ?? Infinity, matmul ?? Infinity);
  const gbs = native ? r.bankBytes / native / 1e6 : undefined;
  const gflops = native ? (2 * r.batch * N * r.dim) / native / 1e6 : undefined;
  console.log(
    `| ${r.dim} | ${r.type} | ${r.batch} | ${fmt(native, 2)} (${fmt(nativeMin, 2)}) | ${fmt(gbs)} | ${pct(gbs, readFloor)} | ${fmt(gflops)} | ` +
      `${pct(gflops, gemmFloor)} | ${fmt(ts, 0)} | ${fmt(gemm, 2)} | ${fmt(matmul, 2)} | ` +
      `${ts && native ? `${(ts / native).toFixed(0)}x` : '–'} | ${native && Number.isFinite(bestOrt) ? `${(bestOrt / native).toFixed(1)}x` : '–'} |`,
  );
}

import { describe, expect, it } from 'vitest';
import { OnnxBankRanker, openBankRanker } from '../src/rank/bank-ranker.js';
import { bottomk, topk } from '../src/rank/topk.js';
import { topkReference } from '../src/rank/topk-reference.js';
import { toFloat16 } from '../src/rank/float16.js';
import { seededRandom } from '../src/predict/seeded.js';
import { cudaProviderInstalled } from '../src/runtime/session.js';
import { Img2PromptError } from '../src/util/errors.js';

function unitRows(rows: number, dim: number, seed: number): Float32Array {
  const r = seededRandom(seed);
  const m = new Float32Array(rows * dim);
  for (let i = 0; i < rows; i++) {
    let s = 0;
    for (let j = 0; j < dim; j++) s += (m[i * dim + j] = r() - 0.5) ** 2;
    for (let j = 0; j < dim; j++) m[i * dim + j]! /= Math.sqrt(s);
  }
  return m;
}

describe('bank rankers', () => {
  const N = 3001;
  const D = 37;
  const bank = { data: unitRows(N, D, 1), dims: [N, D] };
  const queries = { data: unitRows(4, D, 2), dims: [4, D] };

  it('the MatMul+TopK graph (the CUDA path, run here on the CPU provider) ranks like the reference', async () => {
    const ranker = await OnnxBankRanker.open(bank, ['cpu']);
    expect(ranker.engine).toBe('cpu');
    for (const least of [false, true]) {
      const got = await ranker.rank(queries, 10, { least });
      const want = topkReference(queries, bank, 10, { least });
      expect(Array.from(got.indices)).toEqual(Array.from(want.indices));
      for (let i = 0; i < got.scores.length; i++) expect(got.scores[i]).toBeCloseTo(want.scores[i]!, 5);
    }
    const all = await ranker.rank(queries, N + 5);
    expect(all.k).toBe(N);
    expect((await ranker.rank(queries, 0)).indices.length).toBe(0);
    ranker.close();
  });

  it('the bound-bank graph gives the hand-computed top-k and bottom-k, as the native kernel does', async () => {
    // Rows 0..4 of a 3-d bank and two queries; every dot product worked out by hand (no ties in the top 3).
    const small = { data: Float32Array.of(1, 0, 0, 0, 1, 0, 0.6, 0.8, 0, 0, 0.6, 0.8, -1, 0, 0), dims: [5, 3] };
    const q = { data: Float32Array.of(0.8, 0.6, 0, -0.6, 0, 0.8), dims: [2, 3] };
    // q0 · rows = .8, .6, .96, .36, -.8;  q1 · rows = -.6, 0, -.36, .64, .6
    const best = { indices: [2, 0, 1, 3, 4, 1], scores: [0.96, 0.8, 0.6, 0.64, 0.6, 0] };
    const least = { indices: [4, 3, 1, 0, 2, 1], scores: [-0.8, 0.36, 0.6, -0.6, -0.36, 0] };
    const ranker = await OnnxBankRanker.open(small, ['cpu']);
    expect(ranker.engine).toBe('cpu');
    // Twice each, on the one session and binding: the bank stays bound between calls.
    for (let round = 0; round < 2; round++) {
      for (const [want, got, kernel] of [
        [best, await ranker.rank(q, 3), await topk(q, small, 3)],
        [least, await ranker.rank(q, 3, { least: true }), await bottomk(q, small, 3)],
      ] as const) {
        expect(Array.from(got.indices)).toEqual(want.indices);
        expect(Array.from(kernel.indices)).toEqual(want.indices);
        want.scores.forEach((v, i) => {
          expect(got.scores[i]).toBeCloseTo(v, 6);
          expect(kernel.scores[i]).toBeCloseTo(v, 6);
        });
      }
    }
    // One query alone, k past the bank's rows: all 5, best first.
    const one = await ranker.rank({ data: q.data.slice(0, 3), dims: [1, 3] }, 9);
    expect(one.k).toBe(5);
    expect(Array.from(one.indices)).toEqual([2, 0, 1, 3, 4]);
    ranker.close();
  });

  it('reads fp16 banks', async () => {
    const half = { data: toFloat16(bank.data), dims: [N, D] };
    const ranker = await OnnxBankRanker.open(half, ['cpu']);
    const got = await ranker.rank(queries, 5);
    const want = topkReference(queries, half, 5);
    expect(Array.from(got.indices)).toEqual(Array.from(want.indices));
    ranker.close();
  });

  it('rejects a NaN query and a bad k like the native kernel does', async () => {
    const ranker = await OnnxBankRanker.open(bank, ['cpu']);
    const bad = new Float32Array(queries.data);
    bad[2 * D + 11] = NaN;
    const reasons: unknown[] = [];
    for (const run of [
      () => ranker.rank({ data: bad, dims: [4, D] }, 3),
      () => ranker.rank(queries, -1),
      () => ranker.rank(queries, 1.5, { least: true }),
      () => ranker.rank({ data: unitRows(2, D + 1, 3), dims: [2, D + 1] }, 3),
    ]) {
      reasons.push(await run().then(() => 'resolved', (e: unknown) => e));
    }
    for (const r of reasons) expect(r).toBeInstanceOf(Img2PromptError);
    expect(reasons.map((r) => (r as Error).message)).toEqual([
      'topk: query 2 contains NaN',
      'topk: k must be a non-negative integer, got -1',
      'topk: k must be a non-negative integer, got 1.5',
      `topk: queries have dimension ${D + 1}, the bank has ${D}`,
    ]);
    // The native path gives the very same error.
    const nativeRanker = await openBankRanker(bank, ['cpu']);
    expect(nativeRanker.engine).toBe('native');
    await expect(nativeRanker.rank({ data: bad, dims: [4, D] }, 3)).rejects.toThrow('topk: query 2 contains NaN');
    ranker.close();
    nativeRanker.close();
  });

  it('picks the native kernel unless the graph lands on CUDA, and either engine ranks like the reference', async () => {
    const ranker = await openBankRanker(bank, ['cuda', 'cpu']);
    // Without ORT's CUDA provider library the graph would land on the CPU, so the SIMD kernel is chosen.
    if (!cudaProviderInstalled()) expect(ranker.engine).toBe('native');
    else expect(['native', 'cuda']).toContain(ranker.engine);
    for (const least of [false, true]) {
      const got = await ranker.rank(queries, 10, { least });
      const want = topkReference(queries, bank, 10, { least });
      expect(got.k).toBe(10);
      expect(Array.from(got.indices)).toEqual(Array.from(want.indices));
      for (let i = 0; i < got.scores.length; i++) expect(got.scores[i]).toBeCloseTo(want.scores[i]!, 5);
    }
    ranker.close();
  });
});

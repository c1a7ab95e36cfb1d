import { describe, expect, it } from 'vitest';
import { OnnxBankRanker, openBankRanker } from '../src/rank/bank-ranker.js';
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
